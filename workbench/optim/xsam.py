"""X-SAM (Duan, Chen, Guan): SAM whose descent direction is corrected along the top Hessian eigenvector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench._checks import check_choice, check_float, check_int
from workbench.optim.rules import orientation_sign, sam_perturbation, xsam_direction
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.tracker import EigenTracker

ORIENTATIONS = ("as_computed", "along_gradient", "along_adversarial")


class XSAM(SharpnessAware):
    """X-SAM: SAM's ascent, then descend along g̃ = ĝa − α·sign(⟨g_adv, v⟩)·⟨ĝa, v⟩·v instead of g_adv.

    Reading of the published code (github.com/huang5467/X-SAM, ``trainxsam.py`` + ``utils.py``), which does not
    run as published (its X-SAM branch uses ``v`` and ``freq`` that are only defined for "Eigen-SAM"); this class
    follows what that branch evidently means:

    * ε = ρ·ĝ (SAM), g_adv = ∇L(θ + ε); v is estimated at θ (on the same batch, before or during the first pass) and
      applied to g_adv taken at θ + ε.
    * v: 5 warm-started power iterations with exact double-backprop Hessian-vector products (``refresh="power"``;
      the default ``refresh="ritz"`` spends 2-5 products by Rayleigh–Ritz instead, stopping at a residual
      tolerance, measured closer to v1 with fewer products in benchmarks/RESULTS.md), in eval mode when ``model``
      is given, refreshed before steps t = freq, 2·freq, ... (``step % freq == 0 and step > 0``; per epoch with
      ``epoch_length``, as the script's ``enumerate(train_loader)`` counts). Before the first refresh there is no
      v and the step is exactly SAM's (the base optimizer gets g_adv unchanged).
    * with v: the base optimizer (its momentum and weight decay included) gets g̃, built from the unit ĝa.

    Derivation. Write c = ⟨ĝa, v⟩ = cos∠(g_adv, v). Since sign(⟨g_adv, v⟩)·c = |c|, the published correction is
    g̃ = ĝa − α·|c|·v, and g̃'s component along v is c − α|c|:

    * ∠(g_adv, v) ≤ 90° (c ≥ 0): c·(1 − α). α ∈ (0, 1) shrinks it, α = 1 removes it, α = 2 reflects it.
    * ∠(g_adv, v) > 90° (c < 0): c·(1 + α); it grows.

    The components orthogonal to v are ĝa's. Replacing v by −v turns ĝa − α|c|v into ĝa + α|c|v, so which case
    applies is decided by the sign of v, which power iteration leaves arbitrary (fixed by the seed and the warm
    start). The switches make each reading explicit:

    * ``orientation``: which v enters the rule. ``"as_computed"`` (published): the tracked v as power iteration
      leaves it. ``"along_gradient"``: v oriented so that ⟨g, v⟩ ≥ 0 with g = ∇L(θ); then "∠(g_adv, v) ≤ 90°"
      means the SAM gradient still points to the same side of the sharp direction as g (the paper's weakened
      regime: shrink) and > 90° that the ascent crossed it (grow, or no correction with ``angle_gate``).
      ``"along_adversarial"``: ⟨g_adv, v⟩ ≥ 0, so the v-component always shrinks to c·(1 − α) (the README's
      "reduce the component along the dominant eigenvector"); ``angle_gate`` has no effect then.
      ``last_step.orientation_sign`` logs the factor applied to the tracked v.
    * ``angle_gate``: False (published) corrects whatever the angle; True corrects only when
      ∠(g_adv, v) ≤ 90° and leaves ĝa unchanged otherwise.
    * ``normalize_direction``: True (published) steps with g̃ built from the unit ĝa, so the step length no
      longer scales with ‖g_adv‖ once v exists (unlike SAM, and unlike the steps before the first refresh).
      False steps with ‖g_adv‖·g̃ = g_adv − α·|⟨g_adv, v⟩|·v, the same correction on SAM's own gradient (α = 0 is
      then exactly SAM).

    Args:
        params, base_optimizer, model, base_kwargs: as for ``SharpnessAware``.
        rho: ρ > 0 (published default 0.05); a per-group setting.
        alpha: α ∈ [0, 2] (published default 0.2): 1 removes the v-component, 2 reflects it; more would
            over-reflect. A per-group setting.
        freq: refresh period in steps, ≥ 1 (published default 5; its README uses 3); the same in every group.
        power_iters, refresh, refresh_tol: how v is re-estimated, as for ``EigenSAM``.
        normalize_direction, angle_gate, orientation: the switches above.
        seed: seed of the first refresh's random start vector.
        epoch_length: restart the schedule every ``epoch_length`` steps as the published script does, or ``None``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        alpha: float = 0.2,
        freq: int = 5,
        power_iters: int | None = None,
        *,
        refresh: str = "ritz",
        refresh_tol: float | None = None,
        normalize_direction: bool = True,
        angle_gate: bool = False,
        orientation: str = "as_computed",
        seed: int = 0,
        epoch_length: int | None = None,
        model: torch.nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        self.normalize_direction = check_choice("normalize_direction", normalize_direction, (True, False))
        self.angle_gate = check_choice("angle_gate", angle_gate, (False, True))
        self.orientation_convention = check_choice("orientation", orientation, ORIENTATIONS)
        tracker = EigenTracker(
            freq, power_iters, refresh=refresh, refresh_tol=refresh_tol, seed=seed, epoch_length=epoch_length
        )
        settings = {"alpha": alpha, "freq": freq}
        super().__init__(
            params, base_optimizer, rho=rho, tracker=tracker, model=model, group_defaults=settings, **base_kwargs
        )

    def check_group(self, group: dict[str, Any]) -> None:
        """ρ > 0, α ∈ [0, 2] and freq ≥ 1 in every group."""
        super().check_group(group)
        check_float("alpha", group["alpha"], minimum=0.0, maximum=2.0)
        check_int("freq", group["freq"], minimum=1)

    @property
    def alpha(self) -> float | torch.Tensor:
        """α: one float when every group has the same, else per coordinate ``(n,)``."""
        return self.group_values("alpha")

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """SAM's ε = ρ·ĝ."""
        return sam_perturbation(gradient, rho=self.rho)

    def orientation(
        self, gradient: torch.Tensor, adversarial_gradient: torch.Tensor, eigenvector: torch.Tensor
    ) -> torch.Tensor:
        """±1 per ``orientation``: 1, sign(⟨g, v⟩) or sign(⟨g_adv, v⟩) (with sign(0) = +1)."""
        if self.orientation_convention == "along_gradient":
            return orientation_sign(eigenvector, gradient)
        if self.orientation_convention == "along_adversarial":
            return orientation_sign(eigenvector, adversarial_gradient)
        return super().orientation(gradient, adversarial_gradient, eigenvector)

    def descent_direction(
        self, gradient: torch.Tensor, adversarial_gradient: torch.Tensor, eigenvector: torch.Tensor | None
    ) -> torch.Tensor:
        """g_adv before the first refresh, then g̃ (see ``rules.xsam_direction``)."""
        if eigenvector is None:
            return adversarial_gradient
        return xsam_direction(
            adversarial_gradient,
            eigenvector,
            alpha=self.alpha,
            angle_gate=self.angle_gate,
            normalize=self.normalize_direction,
        )
