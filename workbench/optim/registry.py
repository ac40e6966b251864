"""The optimizer registry: every optimizer the workbench trains with, by name, with its options and their docs.

One entry per optimizer: its name (``"eigensam"``), its display title (``"Eigen-SAM"``), its class, a one-line
summary and the options it takes with a one-line doc each. The options' defaults are the class signature's (the
papers' values, except the eigenvector refresh, whose measured better default is documented with the trackers),
read from there, never written twice. Config validation, ``build_optimizer``, the live run, the
toy explorer, the dashboard and the command line all read this table: adding an optimizer is one entry.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workbench._checks import check_choice
from workbench.optim.eigen_sam import EigenSAM
from workbench.optim.plain import PlainStep
from workbench.optim.sam import ASAM, SAM
from workbench.optim.tracker import REFRESH_RULES
from workbench.optim.wrapped import WrappedOptimizer
from workbench.optim.xsam import ORIENTATIONS, XSAM

#: Arguments the training engine supplies itself (when the class takes them), never user options.
CONTEXT_ARGUMENTS = ("model", "seed", "epoch_length")


@dataclass(frozen=True)
class Option:
    """One option an optimizer takes.

    Attributes:
        name: the keyword argument (and ``TrainConfig`` field / command-line flag) name.
        doc: one line: what it does, with its range.
        choices: the allowed values of a categorical option, else ``None``.
    """

    name: str
    doc: str
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer (see the module docstring)."""

    name: str
    title: str
    cls: type[WrappedOptimizer]
    summary: str
    options: tuple[Option, ...] = ()

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of the options it takes, in registry order."""
        return tuple(option.name for option in self.options)

    @property
    def tracks_eigenvector(self) -> bool:
        """Whether it keeps an eigen-tracker (and so refreshes v on a schedule)."""
        return "freq" in self.option_names

    def defaults(self) -> dict[str, Any]:
        """Each option mapped to its default, the paper value (read from the class signature)."""
        parameters = inspect.signature(self.cls).parameters
        return {name: parameters[name].default for name in self.option_names}

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Check names and values of ``options`` without any model: unknown names, then the class's own checks.

        Raises:
            ValueError: naming the stray option(s) and the ones this optimizer takes, or the bad value.
        """
        stray = [name for name in options if name not in self.option_names]
        if stray:
            takes = ", ".join(self.option_names) or "none of them"
            raise ValueError(f"optimizer {self.name!r} takes no {', '.join(stray)} (it takes: {takes})")
        self.build([torch.nn.Parameter(torch.zeros(1))], options=options, lr=1.0)

    def build(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        *,
        options: Mapping[str, Any] | None = None,
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        model: torch.nn.Module | None = None,
        seed: int = 0,
        epoch_length: int | None = None,
        **base_kwargs: Any,
    ) -> WrappedOptimizer:
        """The optimizer over ``params``: ``options`` (defaults where absent), the context arguments the class
        takes (``model`` for BatchNorm handling, ``seed`` and ``epoch_length`` for the eigen-tracker) and
        ``base_optimizer(**base_kwargs)`` as its base."""
        accepted = inspect.signature(self.cls).parameters
        context = {"model": model, "seed": seed, "epoch_length": epoch_length}
        context = {name: value for name, value in context.items() if name in accepted}
        return self.cls(params, base_optimizer, **dict(options or {}), **context, **base_kwargs)


_RHO = "ρ > 0, the radius of the perturbation ε"
_FREQ = "steps between refreshes of the tracked eigenvector v, ≥ 1"
_POWER_ITERS = "Hessian-vector products per refresh, ≥ 1 (none: at most 5 with ritz, 5 with the published power)"
_REFRESH = "how v is re-estimated: ritz (Rayleigh–Ritz, better aligned per product) or power (published)"
_REFRESH_TOL = "ritz stops once the top Ritz pair's relative residual is ≤ this, ≥ 0 (none: 0.05; 0: all power_iters)"

OPTIMIZERS: dict[str, OptimizerEntry] = {
    entry.name: entry
    for entry in (
        OptimizerEntry("sgd", "SGD", PlainStep, "the base optimizer alone (SGD with momentum and weight decay)"),
        OptimizerEntry(
            "sam",
            "SAM",
            SAM,
            "Foret et al. 2021: ε = ρ·g/‖g‖, descend with ∇L(θ + ε)",
            (Option("rho", _RHO),),
        ),
        OptimizerEntry(
            "asam",
            "ASAM",
            ASAM,
            "Kwon et al. 2021: ε = ρ·T²g/‖Tg‖ with T = |θ| + η, a scale-invariant radius",
            (Option("rho", _RHO + " in the adaptive norm"), Option("eta", "η ≥ 0, keeps zero weights perturbable")),
        ),
        OptimizerEntry(
            "eigensam",
            "Eigen-SAM",
            EigenSAM,
            "Luo et al.: ε = ρ·[ĝ + α·sign⟨g, v⟩·(v − ⟨ĝ, v⟩ĝ)], steering ε toward the top eigenvector v1",
            (
                Option("rho", _RHO),
                Option("alpha", "α ≥ 0, weight of v's component orthogonal to ĝ in ε (0 is SAM)"),
                Option("freq", _FREQ),
                Option("power_iters", _POWER_ITERS),
                Option("refresh", _REFRESH, REFRESH_RULES),
                Option("refresh_tol", _REFRESH_TOL),
            ),
        ),
        OptimizerEntry(
            "xsam",
            "X-SAM",
            XSAM,
            "Duan, Chen, Guan: SAM's ascent, then descend along ĝa − α·|cos∠(g_adv, v)|·v",
            (
                Option("rho", _RHO),
                Option("alpha", "α ∈ [0, 2]: 1 removes the v-component of the descent direction, 2 reflects it"),
                Option("freq", _FREQ),
                Option("power_iters", _POWER_ITERS),
                Option("refresh", _REFRESH, REFRESH_RULES),
                Option("refresh_tol", _REFRESH_TOL),
                Option(
                    "normalize_direction",
                    "true (published): step along the unit-length corrected direction; false: rescale it to ‖g_adv‖",
                    (True, False),
                ),
                Option(
                    "angle_gate", "true: correct only while ∠(g_adv, v) ≤ 90°; false (published): always", (False, True)
                ),
                Option("orientation", "which sign of v enters the correction (published: as_computed)", ORIENTATIONS),
            ),
        ),
    )
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)
#: Every option name any registered optimizer takes, in first-seen order.
OPTION_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(name for entry in OPTIMIZERS.values() for name in entry.option_names)
)


def optimizer_entry(name: str) -> OptimizerEntry:
    """The registry entry of ``name``.

    Raises:
        ValueError: for an unknown name, listing the registered ones.
    """
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZER_NAMES)]


def option_choices(name: str) -> tuple[Any, ...] | None:
    """The allowed values of option ``name`` (the same for every optimizer that takes it), or ``None`` if free."""
    choices = {option.choices for entry in OPTIMIZERS.values() for option in entry.options if option.name == name}
    return choices.pop() if len(choices) == 1 else None
