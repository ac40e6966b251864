"""Eigen-SAM (Luo et al.): SAM whose perturbation leans toward the top Hessian eigenvector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench._checks import check_float, check_int
from workbench.optim.rules import eigen_sam_perturbation, sam_perturbation
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.tracker import EigenTracker


class EigenSAM(SharpnessAware):
    """Eigen-SAM: ε = ρ·[ĝ + α·sign(⟨g, v⟩)·(v − ⟨ĝ, v⟩ĝ)], not renormalised; descend with g_adv = ∇L(θ + ε).

    The added term is v's component orthogonal to ĝ, signed to point uphill, so ε is the same for v and −v and
    v's orientation does not matter. It steers ε toward v1 so that SAM's implicit regularisation of λ1 (driven
    by the alignment of ε with v1) becomes explicit. ``last_step.cos_perturbation_eigenvector`` shows it.

    v is re-estimated by an ``EigenTracker`` with the published schedule (see there) from exact double-backprop
    Hessian-vector products on step t's batch at θ, in eval mode when ``model`` is given, before steps t = freq,
    2·freq, ... (per epoch with ``epoch_length``). Published estimate: 5 warm-started power iterations
    (``refresh="power"``); default: 2-5 products spent by Rayleigh–Ritz on the same warm-started Krylov space until
    the top Ritz pair's relative residual is at most ``refresh_tol`` = 0.05 (``refresh="ritz"``), measured closer to
    v1 at lower cost (benchmarks/RESULTS.md).

    Before the first refresh there is no v and the step is exactly SAM's (ε = ρ·ĝ). Reading of the published code:
    ``utils.py`` and the training script ``train.py`` of github.com/RitianLuo/EigenSAM (the same loop is shipped in
    github.com/huang5467/X-SAM as ``XSAM/train.py`` with ``sam.py``). That loop calls
    ``first_step(normalization=False)`` also before v exists, on the unmodified gradient, i.e. ε = ρ·g for the first
    ``freq`` steps: an artefact of the flag it needs once ε is built from ĝ, not copied here.

    Args:
        params, base_optimizer, model, base_kwargs: as for ``SharpnessAware``.
        rho: ρ > 0 (published default 0.1); a per-group setting.
        alpha: α ≥ 0, the weight of the eigenvector term (published default 0.2; α = 0 is SAM); a per-group setting.
        freq: refresh period in steps, ≥ 1 (published default 100); a group setting, the same in every group.
        power_iters: Hessian-vector products per refresh, ≥ 1; ``None``: at most 5 for ``refresh="ritz"``,
            5 (published) for ``refresh="power"``.
        refresh: how v is re-estimated (see ``EigenTracker``): ``"ritz"`` (default: Rayleigh–Ritz on the
            warm-started Krylov space plus a free power step, stopped at ``refresh_tol``; better aligned with v1
            than the published estimate in benchmarks/RESULTS.md, with fewer products) or ``"power"`` (published:
            warm-started power iteration; ``refresh="power"`` with the default ``power_iters`` is the published
            method exactly).
        refresh_tol: the Ritz rule's stopping tolerance, the top Ritz pair's relative residual ≥ 0; ``None``:
            0.05; 0: always ``power_iters`` products. Only with ``refresh="ritz"``.
        seed: seed of the first refresh's random start vector.
        epoch_length: restart the schedule every ``epoch_length`` steps as the published script does, or
            ``None`` (count globally).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.1,
        alpha: float = 0.2,
        freq: int = 100,
        power_iters: int | None = None,
        *,
        refresh: str = "ritz",
        refresh_tol: float | None = None,
        seed: int = 0,
        epoch_length: int | None = None,
        model: torch.nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        tracker = EigenTracker(
            freq, power_iters, refresh=refresh, refresh_tol=refresh_tol, seed=seed, epoch_length=epoch_length
        )
        settings = {"alpha": alpha, "freq": freq}
        super().__init__(
            params, base_optimizer, rho=rho, tracker=tracker, model=model, group_defaults=settings, **base_kwargs
        )

    def check_group(self, group: dict[str, Any]) -> None:
        """ρ > 0, α ≥ 0 and freq ≥ 1 in every group."""
        super().check_group(group)
        check_float("alpha", group["alpha"], minimum=0.0)
        check_int("freq", group["freq"], minimum=1)

    @property
    def alpha(self) -> float | torch.Tensor:
        """α: one float when every group has the same, else per coordinate ``(n,)``."""
        return self.group_values("alpha")

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """Eigen-SAM's ε once v exists, SAM's before (see ``rules.eigen_sam_perturbation``)."""
        if eigenvector is None:
            return sam_perturbation(gradient, rho=self.rho)
        return eigen_sam_perturbation(gradient, eigenvector, rho=self.rho, alpha=self.alpha)
