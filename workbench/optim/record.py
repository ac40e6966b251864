"""StepRecord: what a sharpness-aware optimizer did at its last step, for probes and history tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

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


@dataclass(frozen=True)
class StepRecord:
    """One step of a ``SharpnessAware`` optimizer.

    Notation: g = ∇L(θ) (first pass), ε the perturbation, g_adv = ∇L(θ + ε) (second pass), d the direction
    handed to the base optimizer (g_adv, or X-SAM's corrected g̃), v the eigenvector the step used (the tracked
    vector times ``orientation_sign``). Norms are in the units of the gradient (ε: of the parameters); angles in
    degrees in [0, 180]; anything involving v is NaN when the step used no eigenvector (SAM, ASAM, and Eigen-SAM
    / X-SAM before their first refresh).

    The scalars are computed on the parameters' device and copied to the host only when first read, so
    recording never stalls a GPU. ``scalars()`` gives them all as a dict (one row of a history table).

    Attributes:
        step: index of this step (0 for the first).
        refreshed: whether v was re-estimated just before this step.
        eigenvalue: the Rayleigh-quotient estimate λ of the last refresh (NaN before any).
        gradient: g, flat ``(n,)``, detached.
        perturbation: ε, flat ``(n,)``, detached.
        scalar_values: ``(len(SCALAR_NAMES),)`` tensor behind the scalar properties, in ``SCALAR_NAMES`` order.
    """

    step: int
    refreshed: bool
    eigenvalue: float
    gradient: torch.Tensor = field(repr=False)
    perturbation: torch.Tensor = field(repr=False)
    scalar_values: torch.Tensor = field(repr=False)

    def scalars(self) -> dict[str, float]:
        """Every scalar of the step (``SCALAR_NAMES`` plus step, eigenvalue and refreshed as 0/1) by name."""
        return {
            "step": float(self.step),
            "refreshed": float(self.refreshed),
            "eigenvalue": self.eigenvalue,
            **self._host_values,
        }

    @cached_property
    def _host_values(self) -> dict[str, float]:
        return dict(zip(SCALAR_NAMES, self.scalar_values.tolist(), strict=True))

    @property
    def gradient_norm(self) -> float:
        """‖g‖."""
        return self._host_values["gradient_norm"]

    @property
    def perturbation_norm(self) -> float:
        """‖ε‖."""
        return self._host_values["perturbation_norm"]

    @property
    def adversarial_gradient_norm(self) -> float:
        """‖g_adv‖."""
        return self._host_values["adversarial_gradient_norm"]

    @property
    def cos_perturbation_eigenvector(self) -> float:
        """cos∠(ε, v), in [−1, 1]."""
        return self._host_values["cos_perturbation_eigenvector"]

    @property
    def angle_gradient_eigenvector(self) -> float:
        """∠(g, v) in degrees."""
        return self._host_values["angle_gradient_eigenvector"]

    @property
    def angle_adversarial_eigenvector(self) -> float:
        """∠(g_adv, v) in degrees."""
        return self._host_values["angle_adversarial_eigenvector"]

    @property
    def angle_descent_eigenvector(self) -> float:
        """∠(d, v) in degrees: what a descent correction did to ∠(g_adv, v)."""
        return self._host_values["angle_descent_eigenvector"]

    @property
    def orientation_sign(self) -> float:
        """±1: the factor applied to the tracked vector to get the v this step used (NaN without v)."""
        return self._host_values["orientation_sign"]
