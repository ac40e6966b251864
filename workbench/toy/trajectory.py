"""Run GD, SAM, Eigen-SAM and X-SAM on a 2-D landscape and record the geometry of every step.

The SAM variants are the ``workbench.optim`` classes themselves (``SAM``, ``EigenSAM``, ``XSAM``), stepped with a
closure that evaluates the landscape on a 2-parameter ``nn.Parameter``; GD is ``torch.optim.SGD`` on the same
closure. So the toy trajectories share every formula and every step detail with training a network; nothing is
re-implemented here. What this module adds is the record: for each step t, at θ_t, the exact top eigenpair of the
analytic Hessian and the angles between it and the step's vectors (``workbench.optim.rules.angle_degrees`` and
``cosine``).

The closure hands the optimizers the landscape's closed-form gradient with ``eigenvector="exact"`` (a third
faster than autograd, and the same for every method of a run) and ``loss.backward()`` with ``"power"``, whose
tracker takes Hessian-vector products through the closure's graph. Closed form and autograd agree to rounding
(``tests/test_toy_landscapes.py``).

Where v comes from (``RunSettings.eigenvector``):

* ``"exact"`` (the teaching default): before every step, v1 = the top eigenvector of the exact 2×2 Hessian at θ_t
  (``torch.linalg.eigh``) is handed to the optimizer's tracker (``EigenTracker.set_vector``), and its own power
  iteration is scheduled beyond the run. Each v1 is oriented like the previous one (⟨v_t, v_{t−1}⟩ ≥ 0, the
  tracker's own rule; the first one with its largest-magnitude entry positive), so X-SAM's ``"as_computed"``
  orientation keeps its meaning: an orientation set by history, not by the gradient. Eigen-SAM and X-SAM then
  use a correction from the very first step.
* ``"power"`` (the published schedule): the optimizers' ``EigenTracker`` estimates v with ``power_iters``
  warm-started power iterations of exact Hessian-vector products every ``freq`` steps. As published, no v exists
  before step ``freq``, so Eigen-SAM and X-SAM take plain SAM steps until then.

The angles in the record use v1 oriented along the gradient (⟨g, v1⟩ ≥ 0) whatever the optimizer used, so that
they compare across methods: ∠(g, v1) ∈ [0°, 90°] says how much of g climbs the sharp direction (0°: straight up
the steep wall, 90°: along the valley floor), and ∠(g_adv, v1) > 90° says the ascent crossed the valley floor.

The record also says how each step moves the sharpness (``workbench.probes.mechanism``): the exact ∇λ1 at every
point (``Landscape.top_eigenvalue_gradient``), the step's first-order change of λ1 ⟨θ_{t+1} − θ_t, ∇λ1(θ_t)⟩, and,
for the SAM variants, the remainder r = g_adv − g − Hε of the perturbed gradient and the part of that change r
contributes: on a quadratic r = 0 and ∇λ1 = 0; elsewhere SAM walks down λ1 through r only as far as ε lines up
with v1 (r ≈ ½‖ε‖²cos²∠(ε, v1)·∇λ1 + cross terms).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial

import numpy as np
import pandas as pd
import torch

from workbench._checks import check_bool, check_choice, check_float, check_int
from workbench.optim import OPTIMIZERS, WrappedOptimizer
from workbench.optim.rules import angle_degrees, cosine, orientation_sign
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.xsam import ORIENTATIONS
from workbench.probes.mechanism import PerturbedGradient, direction_parts
from workbench.toy.landscapes import Landscape, check_point

#: The toy's methods by title, each a registered optimizer: full-batch gradient descent and the SAM family.
METHOD_OPTIMIZERS = {"GD": "sgd", **{OPTIMIZERS[name].title: name for name in ("sam", "eigensam", "xsam")}}
METHODS = tuple(METHOD_OPTIMIZERS)
EIGENVECTOR_SOURCES = ("exact", "power")
_TRACKING = ("freq", "power_iters", "seed")
#: The ``RunSettings`` fields each method's trajectory reads (besides the landscape and the start); changing any other
#: field leaves it as it is (``tests/test_toy_trajectory.py`` checks this). Every method reads ``eigenvector``: it
#: also chooses how the closure computes the gradient, which moves every trajectory in its last bits.
METHOD_SETTINGS = {
    "GD": ("lr", "steps", "eigenvector"),
    "SAM": ("lr", "steps", "eigenvector", "rho"),
    "Eigen-SAM": ("lr", "steps", "eigenvector", "rho", "eigen_alpha", *_TRACKING),
    "X-SAM": (
        "lr", "steps", "eigenvector", "rho", "xsam_alpha", "xsam_normalize", "xsam_angle_gate", "xsam_orientation",
        *_TRACKING,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RunSettings:
    """Hyper-parameters shared by the four methods (each method reads the ones it uses).

    Attributes:
        rho: ρ > 0, the SAM radius (in units of θ).
        lr: learning rate > 0 of the base optimizer (plain SGD, no momentum, no weight decay).
        steps: number of steps ≥ 1.
        eigen_alpha: Eigen-SAM's α ≥ 0 (the weight of v1's component orthogonal to ĝ in ε; 0 is SAM).
        xsam_alpha: X-SAM's α ∈ [0, 2] (1 removes the v1-component of the descent direction, 2 reflects it).
        xsam_normalize: X-SAM's ``normalize_direction``: True (published) steps along g̃ built from the unit ĝa,
            so its step length is lr whatever ‖g_adv‖; False (default here) applies the same correction to SAM's
            own g_adv, so that step lengths compare with SAM's.
        xsam_angle_gate: X-SAM's ``angle_gate``: correct only while ∠(g_adv, v) ≤ 90°.
        xsam_orientation: X-SAM's ``orientation`` (``workbench.optim.xsam.ORIENTATIONS``); default
            ``"along_gradient"``, the reading under which the paper's "angle ≤ 90°" is defined.
        eigenvector: ``"exact"`` (v1 from the exact Hessian before every step) or ``"power"`` (the optimizers'
            tracker on its published schedule); see the module docstring.
        freq, power_iters, seed: the tracker's refresh period (steps ≥ 1), power iterations per refresh (≥ 1)
            and start-vector seed, used with ``eigenvector="power"``.
    """

    rho: float = 0.1
    lr: float = 0.02
    steps: int = 150
    eigen_alpha: float = 0.2
    xsam_alpha: float = 0.2
    xsam_normalize: bool = False
    xsam_angle_gate: bool = False
    xsam_orientation: str = "along_gradient"
    eigenvector: str = "exact"
    freq: int = 5
    power_iters: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        check_float("rho", self.rho, minimum=0.0, min_inclusive=False)
        check_float("lr", self.lr, minimum=0.0, min_inclusive=False)
        check_int("steps", self.steps, minimum=1)
        check_float("eigen_alpha", self.eigen_alpha, minimum=0.0)
        check_float("xsam_alpha", self.xsam_alpha, minimum=0.0, maximum=2.0)
        check_bool("xsam_normalize", self.xsam_normalize)
        check_bool("xsam_angle_gate", self.xsam_angle_gate)
        check_choice("xsam_orientation", self.xsam_orientation, ORIENTATIONS)
        check_choice("eigenvector", self.eigenvector, EIGENVECTOR_SOURCES)
        check_int("freq", self.freq, minimum=1)
        check_int("power_iters", self.power_iters, minimum=1)
        check_int("seed", self.seed)


_POINT_FIELDS = ("positions", "losses", "top_eigenvalues", "lambda1_gradients")  # one row per point θ_0 … θ_T


@dataclass(frozen=True)
class Trajectory:
    """Everything one method did on a landscape, step by step (float64 numpy arrays; T = number of steps).

    Notation: θ_t the position before step t, g = ∇L(θ_t), ε the perturbation (0 for GD), g_adv = ∇L(θ_t + ε)
    (g for GD), d the direction handed to SGD (θ_{t+1} = θ_t − lr·d; X-SAM's corrected g̃, else g_adv),
    v1 the exact top eigenvector of ∇²L(θ_t) oriented along g, λ1 its eigenvalue. Angles in degrees in [0, 180].

    Attributes:
        method: one of ``METHODS``.
        positions: θ_0 … θ_T, ``(T + 1, 2)``.
        losses: L(θ_t), ``(T + 1,)``.
        top_eigenvalues: λ1 at θ_t, ``(T + 1,)`` (loss units per unit θ²).
        gradients, perturbations, adversarial_gradients, directions: g, ε, g_adv, d, ``(T, 2)`` each.
        top_eigenvectors: v1 (unit, oriented along g), ``(T, 2)``.
        used_eigenvectors: the v the optimizer used at step t (after X-SAM's orientation), ``(T, 2)``; NaN rows
            where it used none (GD, SAM, and the steps before the tracker's first refresh).
        angle_gradient: ∠(g, v1), ``(T,)``, in [0, 90] by the orientation of v1.
        angle_adversarial: ∠(g_adv, v1), ``(T,)``.
        angle_direction: ∠(d, v1), ``(T,)``: what X-SAM's correction did to ∠(g_adv, v1).
        cos_perturbation: cos∠(ε, v1), ``(T,)``; NaN for GD (ε = 0).
        lambda1_gradients: ∇λ1 at θ_0 … θ_T, ``(T + 1, 2)`` (loss units per unit θ³; NaN where λ1 = λ2 has a kink).
        lambda1_rates: ⟨θ_{t+1} − θ_t, ∇λ1(θ_t)⟩, ``(T,)``: step t's first-order change of λ1 (negative: it
            flattens; compare ``lambda1_changes``).
        remainders: r = g_adv − g − ∇²L(θ_t)ε, ``(T, 2)``: the perturbed gradient beyond its second-order part;
            NaN rows for GD.
        remainder_rates: the part of ``lambda1_rates`` that r contributes, −lr·⟨d_r, ∇λ1⟩ with d_r r's part of the
            direction (``workbench.probes.mechanism.direction_parts``; r itself for SAM and Eigen-SAM), ``(T,)``;
            NaN for GD.
    """

    method: str
    positions: np.ndarray
    losses: np.ndarray
    top_eigenvalues: np.ndarray
    gradients: np.ndarray
    perturbations: np.ndarray
    adversarial_gradients: np.ndarray
    directions: np.ndarray
    top_eigenvectors: np.ndarray
    used_eigenvectors: np.ndarray
    angle_gradient: np.ndarray
    angle_adversarial: np.ndarray
    angle_direction: np.ndarray
    cos_perturbation: np.ndarray
    lambda1_gradients: np.ndarray
    lambda1_rates: np.ndarray
    remainders: np.ndarray
    remainder_rates: np.ndarray

    @property
    def lambda1_changes(self) -> np.ndarray:
        """λ1(θ_{t+1}) − λ1(θ_t), ``(T,)``: what ``lambda1_rates`` predicts to first order."""
        return np.diff(self.top_eigenvalues)

    @property
    def steps(self) -> int:
        """T, the number of steps taken."""
        return len(self.gradients)

    @property
    def final_position(self) -> tuple[float, float]:
        """θ_T."""
        return (float(self.positions[-1, 0]), float(self.positions[-1, 1]))

    def truncated(self, steps: int) -> Trajectory:
        """The first ``steps`` steps (θ_0 … θ_steps): the trajectory a run of ``steps`` steps records, since no step
        depends on the run's length (the exact-v1 tracker's own schedule lies beyond any run).

        Raises:
            ValueError: naming ``steps`` when it is not in [1, T].
        """
        steps = check_int("steps", steps, minimum=1, maximum=self.steps)
        cut = {
            field.name: getattr(self, field.name)[: steps + (field.name in _POINT_FIELDS)]
            for field in fields(self)
            if field.name != "method"
        }
        return Trajectory(method=self.method, **cut)

    def table(self) -> pd.DataFrame:
        """One row per step t = 0 … T−1 (θ_t, L, λ1, the vectors' components and the angles), plus the end θ_T."""
        steps = self.steps
        columns: dict[str, np.ndarray] = {
            "step": np.arange(steps + 1),
            "x": self.positions[:, 0],
            "y": self.positions[:, 1],
            "loss": self.losses,
            "lambda1": self.top_eigenvalues,
            "lambda1_gradients_x": self.lambda1_gradients[:, 0],
            "lambda1_gradients_y": self.lambda1_gradients[:, 1],
        }
        for field in fields(self):
            values = getattr(self, field.name)
            if field.name in {"method", "positions", "losses", "top_eigenvalues", "lambda1_gradients"}:
                continue
            padded = np.concatenate([values, np.full((1, *values.shape[1:]), np.nan)])
            if padded.ndim == 2:
                columns[f"{field.name}_x"], columns[f"{field.name}_y"] = padded[:, 0], padded[:, 1]
            else:
                columns[field.name] = padded
        frame = pd.DataFrame(columns)
        frame.insert(0, "method", self.method)
        return frame


def run_trajectory(
    landscape: Landscape, start: Sequence[float], method: str, settings: RunSettings | None = None
) -> Trajectory:
    """Step ``method`` from ``start`` for ``settings.steps`` steps on ``landscape`` and record every step.

    The loop keeps only what the optimizer produced at each step (θ_t, L, g, ε, d and the v it used); the exact
    eigenpairs, g_adv and the angles are computed afterwards for all steps at once (batched formulas, the same
    ones), except the exact v1 that ``eigenvector="exact"`` hands to the tracker before each step.

    Args:
        landscape: the loss.
        start: θ_0 as (x, y).
        method: one of ``METHODS``.
        settings: hyper-parameters (``RunSettings()`` when ``None``).

    Raises:
        ValueError: naming ``method`` or ``start`` when they are not allowed.
    """
    check_choice("method", method, METHODS)
    settings = RunSettings() if settings is None else settings
    param = torch.nn.Parameter(torch.tensor(check_point("start", start), dtype=torch.float64))
    optimizer = _make_optimizer(method, param, settings)
    closure = _closure(landscape, param, closed_form=settings.eigenvector == "exact")
    tracker = optimizer.tracker
    set_exact = tracker is not None and settings.eigenvector == "exact"
    names = ("theta", "loss", "gradient", "ascent", "ascended", "d", "v")
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    unused = torch.full((2,), torch.nan, dtype=torch.float64)
    previous: torch.Tensor | None = None
    for _ in range(settings.steps):
        theta = param.detach().clone()
        if set_exact:
            eigenvalues, eigenvectors = torch.linalg.eigh(landscape.hessian(theta))
            previous = _oriented_like(eigenvectors[:, -1], previous)
            tracker.set_vector(previous, float(eigenvalues[-1]))
        loss = optimizer.step(closure)
        record = optimizer.last_step
        sign = record.orientation_sign
        used = unused if tracker is None or tracker.vector is None or math.isnan(sign) else sign * tracker.vector
        for name, value in (
            ("theta", theta),
            ("loss", loss.detach()),
            ("gradient", record.gradient),
            ("ascent", torch.zeros_like(theta) if record.perturbation is None else record.perturbation),
            ("ascended", torch.tensor(record.perturbation is not None)),
            ("d", param.grad.detach().clone()),
            ("v", used),
        ):
            columns[name].append(value)
    stacked = {name: torch.stack(values) for name, values in columns.items()}
    return _assemble(method, landscape, param.detach().clone(), stacked, optimizer)


def run_all(
    landscape: Landscape,
    start: Sequence[float],
    settings: RunSettings | None = None,
    methods: Sequence[str] = METHODS,
) -> dict[str, Trajectory]:
    """``run_trajectory`` for each of ``methods`` from the same start with the same settings, by method name."""
    return {method: run_trajectory(landscape, start, method, settings) for method in methods}


def _make_optimizer(method: str, param: torch.nn.Parameter, settings: RunSettings) -> WrappedOptimizer:
    """The registered optimizer of ``method`` (plain SGD as its base, no momentum); with exact v1 the tracker's own
    schedule lies beyond the run."""
    name = METHOD_OPTIMIZERS[method]
    tracking = {
        "freq": settings.freq if settings.eigenvector == "power" else settings.steps,
        "power_iters": settings.power_iters,
        "refresh": "power",
    }
    options = {
        "sgd": {},
        "sam": {"rho": settings.rho},
        "eigensam": {"rho": settings.rho, "alpha": settings.eigen_alpha, **tracking},
        "xsam": {
            "rho": settings.rho,
            "alpha": settings.xsam_alpha,
            "normalize_direction": settings.xsam_normalize,
            "angle_gate": settings.xsam_angle_gate,
            "orientation": settings.xsam_orientation,
            **tracking,
        },
    }[name]
    return OPTIMIZERS[name].build([param], options=options, seed=settings.seed, lr=settings.lr)


def _closure(landscape: Landscape, param: torch.nn.Parameter, *, closed_form: bool) -> Callable[[], torch.Tensor]:
    """The LBFGS-style closure: L(θ), its gradient in ``param.grad``, and the loss returned.

    ``closed_form``: the gradient is the landscape's formula; else ``loss.backward()``, which the tracker's power
    iteration needs (it differentiates the closure's gradient again) and which costs a third more per step.
    """

    def closure() -> torch.Tensor:
        if closed_form:
            theta = param.detach()
            param.grad = landscape.gradient(theta)
            return landscape.value(theta)
        param.grad = None
        loss = landscape.value(param)
        loss.backward()
        return loss

    return closure


def _assemble(
    method: str, landscape: Landscape, end: torch.Tensor, steps: dict[str, torch.Tensor], optimizer: WrappedOptimizer
) -> Trajectory:
    """The ``Trajectory`` from the per-step tensors ``(T, 2)`` / ``(T,)`` of ``run_trajectory`` and θ_T: the exact
    eigenpairs and ∇λ1 at every θ_t (batched), g_adv at θ_t + ε (g itself without an ascent), the angles, and for
    the SAM variants the remainder r = g_adv − g − Hε with the λ1 rate of its part of the step."""
    positions = torch.cat([steps["theta"], end[None]])
    eigenvalues, eigenvectors = torch.linalg.eigh(landscape.hessian(positions))
    gradient, perturbation, direction = steps["gradient"], steps["ascent"], steps["d"]
    ascends = isinstance(optimizer, SharpnessAware)
    adversarial = landscape.gradient(steps["theta"] + perturbation) if ascends else direction
    v1 = eigenvectors[:-1, :, -1]
    v1 = v1 * _batched(orientation_sign)(v1, gradient)[:, None]
    lambda1_gradients = landscape.top_eigenvalue_gradient(positions)
    remainders, remainder_rates = _remainders(landscape, steps, adversarial, lambda1_gradients[:-1], optimizer)
    position_array = positions.numpy()
    return Trajectory(
        method=method,
        positions=position_array,
        losses=torch.cat([steps["loss"], landscape.value(end)[None].detach()]).numpy(),
        top_eigenvalues=eigenvalues[:, -1].numpy(),
        lambda1_gradients=lambda1_gradients.numpy(),
        lambda1_rates=(np.diff(position_array, axis=0) * lambda1_gradients[:-1].numpy()).sum(axis=1),
        gradients=gradient.numpy(),
        perturbations=perturbation.numpy(),
        adversarial_gradients=adversarial.numpy(),
        directions=direction.numpy(),
        top_eigenvectors=v1.numpy(),
        used_eigenvectors=steps["v"].numpy(),
        angle_gradient=_batched(angle_degrees)(gradient, v1).numpy(),
        angle_adversarial=_batched(angle_degrees)(adversarial, v1).numpy(),
        angle_direction=_batched(angle_degrees)(direction, v1).numpy(),
        cos_perturbation=_batched(cosine)(perturbation, v1).numpy(),
        remainders=remainders.numpy(),
        remainder_rates=remainder_rates.numpy(),
    )


def _remainders(
    landscape: Landscape,
    steps: dict[str, torch.Tensor],
    adversarial: torch.Tensor,
    lambda1_gradients: torch.Tensor,
    optimizer: WrappedOptimizer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """r = g_adv − g − Hε ``(T, 2)`` and −lr·⟨r's part of d, ∇λ1⟩ ``(T,)`` (``workbench.probes.mechanism``); NaN for
    GD and for the steps a SAM variant took without an ascent."""
    count = steps["theta"].shape[0]
    remainders = torch.full((count, 2), torch.nan, dtype=torch.float64)
    rates = torch.full((count,), torch.nan, dtype=torch.float64)
    if not isinstance(optimizer, SharpnessAware):
        return remainders, rates
    second_order = (landscape.hessian(steps["theta"]) @ steps["ascent"][:, :, None])[:, :, 0]
    remainders = adversarial - steps["gradient"] - second_order
    lr = optimizer.param_groups[0]["lr"]
    for t in range(count):
        if not steps["ascended"][t]:
            remainders[t] = torch.nan
            continue
        used = steps["v"][t]
        eigenvector = None if used.isnan().any() else used
        parts = PerturbedGradient(
            steps["gradient"][t], steps["ascent"][t], second_order[t], remainders[t], float(steps["loss"][t])
        )
        split = direction_parts(partial(_descent, optimizer, eigenvector), parts)
        rates[t] = -lr * torch.dot(split.remainder, lambda1_gradients[t])
    return remainders, rates


def _descent(
    optimizer: SharpnessAware, eigenvector: torch.Tensor | None, gradient: torch.Tensor, adversarial: torch.Tensor
) -> torch.Tensor:
    return optimizer.descent_direction(gradient, adversarial, eigenvector)


def _batched(rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A rule of ``workbench.optim.rules`` on two vectors ``(2,)``, applied row by row to ``(T, 2)`` batches."""
    return torch.vmap(rule)


def _oriented_like(vector: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """``vector`` (2,) times ±1 so that ⟨vector, previous⟩ ≥ 0; without ``previous``, its largest entry positive."""
    if previous is None:
        previous = torch.nn.functional.one_hot(vector.abs().argmax(), len(vector)).to(vector)
    return vector * orientation_sign(vector, previous)
