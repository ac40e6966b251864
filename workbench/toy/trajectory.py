"""Run GD, SAM, Eigen-SAM and X-SAM on a 2-D landscape and record the geometry of every step.

The SAM variants are the ``workbench.optim`` classes themselves (``SAM``, ``EigenSAM``, ``XSAM``), stepped with a
closure that evaluates the landscape on a 2-parameter ``nn.Parameter``; GD is ``torch.optim.SGD`` on the same
closure. So the toy trajectories share every formula and every step detail with training a network; nothing is
re-implemented here. What this module adds is the record: for each step t, at θ_t, the exact top eigenpair of the
analytic Hessian and the angles between it and the step's vectors (``workbench.optim.rules.angle_degrees`` and
``cosine``).

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

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
    closure = _closure(landscape, param)
    tracker = optimizer.tracker
    set_exact = tracker is not None and settings.eigenvector == "exact"
    rows: list[dict[str, torch.Tensor]] = []
    previous: torch.Tensor | None = None
    for _ in range(settings.steps):
        theta = param.detach().clone()
        eigenvalues, eigenvectors = torch.linalg.eigh(landscape.hessian(theta))
        v1, lambda1 = eigenvectors[:, -1], eigenvalues[-1]
        previous = _oriented_like(v1, previous)
        if set_exact:
            tracker.set_vector(previous, float(lambda1))
        loss = optimizer.step(closure)
        rows.append(_record_step(landscape, optimizer, param, theta, loss, v1, lambda1))
    return _assemble(method, landscape, param.detach().clone(), rows)


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


def _closure(landscape: Landscape, param: torch.nn.Parameter) -> Callable[[], torch.Tensor]:
    """The LBFGS-style closure: L(θ) on the parameter, backward, return the loss."""

    def closure() -> torch.Tensor:
        param.grad = None
        loss = landscape.value(param)
        loss.backward()
        return loss

    return closure


def _record_step(
    landscape: Landscape,
    optimizer: WrappedOptimizer,
    param: torch.nn.Parameter,
    theta: torch.Tensor,
    loss: torch.Tensor,
    v1: torch.Tensor,
    lambda1: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The vectors of the step just taken from θ (the optimizer's own g, ε and d) and their angles to v1."""
    direction = param.grad.detach().clone()
    record = optimizer.last_step
    gradient = record.gradient
    if record.perturbation is None:  # a plain gradient step: no ascent
        perturbation, adversarial = torch.zeros_like(theta), direction
    else:
        perturbation = record.perturbation
        adversarial = landscape.gradient(theta + perturbation)
    sign = torch.tensor(record.orientation_sign, dtype=theta.dtype)
    tracked = optimizer.tracker.vector if optimizer.tracker is not None else None
    used = sign * tracked if tracked is not None and not sign.isnan() else torch.full_like(theta, torch.nan)
    v1 = v1 * orientation_sign(v1, gradient)
    lambda1_gradient = landscape.top_eigenvalue_gradient(theta)
    remainder = torch.full_like(theta, torch.nan)
    remainder_rate = torch.tensor(torch.nan, dtype=theta.dtype)
    if isinstance(optimizer, SharpnessAware) and record.perturbation is not None:
        second_order = landscape.hessian(theta) @ perturbation
        remainder = adversarial - gradient - second_order
        parts = PerturbedGradient(gradient, perturbation, second_order, remainder, float(loss))
        eigenvector = None if used.isnan().any() else used
        split = direction_parts(lambda g, g_adv: optimizer.descent_direction(g, g_adv, eigenvector), parts)
        remainder_rate = -optimizer.param_groups[0]["lr"] * torch.dot(split.remainder, lambda1_gradient)
    return {
        "theta": theta,
        "loss": loss.detach(),
        "lambda1": lambda1,
        "gradients": gradient,
        "perturbations": perturbation,
        "adversarial_gradients": adversarial,
        "directions": direction,
        "top_eigenvectors": v1,
        "used_eigenvectors": used,
        "angle_gradient": angle_degrees(gradient, v1),
        "angle_adversarial": angle_degrees(adversarial, v1),
        "angle_direction": angle_degrees(direction, v1),
        "cos_perturbation": cosine(perturbation, v1),
        "lambda1_gradients": lambda1_gradient,
        "remainders": remainder,
        "remainder_rates": remainder_rate,
    }


def _assemble(method: str, landscape: Landscape, end: torch.Tensor, rows: list[dict[str, torch.Tensor]]) -> Trajectory:
    """Stack the per-step rows into a ``Trajectory``, adding the end point θ_T with its loss and λ1."""

    def stacked(key: str) -> np.ndarray:
        return torch.stack([row[key] for row in rows]).numpy()

    end_lambda1 = torch.linalg.eigvalsh(landscape.hessian(end))[-1]
    positions = np.concatenate([stacked("theta"), end[None].numpy()])
    end_gradient = landscape.top_eigenvalue_gradient(end)[None].numpy()
    lambda1_gradients = np.concatenate([stacked("lambda1_gradients"), end_gradient])
    return Trajectory(
        method=method,
        positions=positions,
        losses=np.append(stacked("loss"), float(landscape.value(end))),
        top_eigenvalues=np.append(stacked("lambda1"), float(end_lambda1)),
        lambda1_gradients=lambda1_gradients,
        lambda1_rates=(np.diff(positions, axis=0) * lambda1_gradients[:-1]).sum(axis=1),
        **{key: stacked(key) for key in _STEP_FIELDS},
    )


_STEP_FIELDS = (
    "gradients",
    "perturbations",
    "adversarial_gradients",
    "directions",
    "top_eigenvectors",
    "used_eigenvectors",
    "angle_gradient",
    "angle_adversarial",
    "angle_direction",
    "cos_perturbation",
    "remainders",
    "remainder_rates",
)


def _oriented_like(vector: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """``vector`` (2,) times ±1 so that ⟨vector, previous⟩ ≥ 0; without ``previous``, its largest entry positive."""
    if previous is None:
        previous = torch.nn.functional.one_hot(vector.abs().argmax(), len(vector)).to(vector)
    return vector * orientation_sign(vector, previous)
