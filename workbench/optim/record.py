"""StepRecord: what a workbench optimizer did at its last step, for probes and history tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch

from workbench.devices import to_host

SCALAR_NAMES = (
    "gradient_norm",
    "perturbation_norm",
    "adversarial_gradient_norm",
    "cos_perturbation_eigenvector",
    "angle_gradient_eigenvector",
    "angle_adversarial_eigenvector",
    "angle_descent_eigenvector",
    "orientation_sign",
)
NORM_NAMES = SCALAR_NAMES[:3]  # what a step without an eigenvector records (the first alone without a perturbation)
TRACKING_NAMES = (*SCALAR_NAMES, "eigenvalue")  # what a step of an eigenvector-tracking method records


@dataclass(frozen=True)
class StepRecord:
    """One step of a workbench optimizer (``PlainStep`` or a ``SharpnessAware`` one).

    Notation: g = ∇L(θ) (first pass), ε the perturbation, g_adv = ∇L(θ + ε) (second pass), d the direction
    handed to the base optimizer (g_adv, or X-SAM's corrected g̃), v the eigenvector the step used (the tracked
    vector times ``orientation_sign``). Norms are in the units of the gradient (ε: of the parameters); angles in
    degrees in [0, 180]; anything involving v is NaN when the step used no eigenvector (Eigen-SAM and X-SAM
    before their first refresh).

    A record holds the scalars that apply to its optimizer (``scalar_names``): ‖g‖ alone for a plain step, the
    three norms for SAM and ASAM, all of ``TRACKING_NAMES`` (``SCALAR_NAMES`` and ``eigenvalue``) plus
    ``refreshed`` for the methods that track an eigenvector. They are computed on the parameters' device, stacked
    in one tensor and copied to the host only when first read, all at once: recording never stalls a GPU, and
    reading a record costs one synchronisation. ``scalars()`` gives them as a dict (one row of a history table);
    reading a property the record does not hold gives NaN.

    Attributes:
        step: index of this step (0 for the first).
        refreshed: whether v was re-estimated just before this step.
        gradient: g, flat ``(n,)``, detached.
        perturbation: ε, flat ``(n,)``, detached; ``None`` for a plain step.
        scalar_values: ``(len(scalar_names),)`` tensor behind the scalar properties.
        scalar_names: the names of ``scalar_values``, in order (a prefix-free subset of ``SCALAR_NAMES``).
        tracking: whether the optimizer tracks an eigenvector (then ``refreshed`` and ``eigenvalue`` are scalars).
        skipped: the step was skipped (no perturbation, no update) because a loss-scaled gradient was not finite
            (float16 training with a ``GradScaler``); ``scalars()`` then has ``skipped = 1``.
    """

    step: int
    refreshed: bool
    gradient: torch.Tensor = field(repr=False)
    perturbation: torch.Tensor | None = field(repr=False)
    scalar_values: torch.Tensor = field(repr=False)
    scalar_names: tuple[str, ...] = SCALAR_NAMES
    tracking: bool = True
    skipped: bool = False

    def scalars(self) -> dict[str, float]:
        """Every scalar of the step by name: ``step``, the tracker's ``refreshed`` (0/1) and ``eigenvalue`` when
        it has one, ``scalar_names``, and ``skipped = 1`` for a skipped step."""
        values = {name: value for name, value in self._host_values.items() if name != "eigenvalue"}
        tracker = {"refreshed": float(self.refreshed), "eigenvalue": self.eigenvalue} if self.tracking else {}
        skipped = {"skipped": 1.0} if self.skipped else {}
        return {"step": float(self.step), **tracker, **values, **skipped}

    @cached_property
    def _host_values(self) -> dict[str, float]:
        return dict(zip(self.scalar_names, to_host(self.scalar_values).tolist(), strict=True))

    def _value(self, name: str) -> float:
        return self._host_values.get(name, math.nan)

    @property
    def eigenvalue(self) -> float:
        """The eigen-tracker's estimate λ of v's eigenvalue from the last refresh (NaN before any, and for methods
        without a tracker; see ``EigenTracker.eigenvalue`` for which vector it belongs to)."""
        return self._value("eigenvalue")

    @property
    def gradient_norm(self) -> float:
        """‖g‖."""
        return self._value("gradient_norm")

    @property
    def perturbation_norm(self) -> float:
        """‖ε‖."""
        return self._value("perturbation_norm")

    @property
    def adversarial_gradient_norm(self) -> float:
        """‖g_adv‖."""
        return self._value("adversarial_gradient_norm")

    @property
    def cos_perturbation_eigenvector(self) -> float:
        """cos∠(ε, v), in [−1, 1]."""
        return self._value("cos_perturbation_eigenvector")

    @property
    def angle_gradient_eigenvector(self) -> float:
        """∠(g, v) in degrees."""
        return self._value("angle_gradient_eigenvector")

    @property
    def angle_adversarial_eigenvector(self) -> float:
        """∠(g_adv, v) in degrees."""
        return self._value("angle_adversarial_eigenvector")

    @property
    def angle_descent_eigenvector(self) -> float:
        """∠(d, v) in degrees: what a descent correction did to ∠(g_adv, v)."""
        return self._value("angle_descent_eigenvector")

    @property
    def orientation_sign(self) -> float:
        """±1: the factor applied to the tracked vector to get the v this step used (NaN without v)."""
        return self._value("orientation_sign")
