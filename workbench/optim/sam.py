"""SAM and ASAM: the sharpness-aware methods that need no eigenvector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench._checks import check_float
from workbench.optim.rules import asam_perturbation, sam_perturbation
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.params import flatten


class SAM(SharpnessAware):
    """Sharpness-Aware Minimization (Foret et al., 2021): ε = ρ·g/‖g‖, descend with g_adv = ∇L(θ + ε).

    ``SAM(params, base_optimizer=torch.optim.SGD, rho=0.05, model=None, **base_kwargs)``; ρ > 0 (0.05 in the
    paper for CIFAR-10). See ``SharpnessAware`` for the step, the closure protocol and ``model``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        *,
        model: torch.nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, model=model, **base_kwargs)

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """ε = ρ·ĝ (see ``rules.sam_perturbation``)."""
        return sam_perturbation(gradient, rho=self.rho)


class ASAM(SharpnessAware):
    """Adaptive SAM (Kwon et al., 2021): ε = ρ·T²g/‖T g‖ with T = diag(|θ| + η), a scale-invariant radius.

    ``ASAM(params, base_optimizer=torch.optim.SGD, rho=0.5, eta=0.01, model=None, **base_kwargs)``; defaults
    are the published code's (ρ = 0.5 on CIFAR-10, 1.0 on CIFAR-100). ρ > 0; η ≥ 0; both are per-group settings.

    Every parameter is scaled by default. The published code scales only parameters whose names contain
    "weight" and uses T = 1 for the others (biases); to match it, put those in a parameter group with
    ``"adaptive": False``, e.g. ``[{"params": weights}, {"params": biases, "adaptive": False}]``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.5,
        eta: float = 0.01,
        *,
        model: torch.nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, model=model, group_defaults={"eta": eta}, **base_kwargs)

    def check_group(self, group: dict[str, Any]) -> None:
        """ρ > 0 and η ≥ 0 in every group."""
        super().check_group(group)
        check_float("eta", group["eta"], minimum=0.0)

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """ε = ρ·T²g/‖T g‖ (see ``rules.asam_perturbation``), T = 1 in groups with ``"adaptive": False``."""
        params = self._params()
        weights = flatten([param.detach() for param in params])
        eta = self.group_values("eta")
        return asam_perturbation(gradient, weights, rho=self.rho, eta=eta, adaptive=self._adaptive_mask())

    def _adaptive_mask(self) -> torch.Tensor | None:
        flags = [bool(group.get("adaptive", True)) for group in self.param_groups]
        if all(flags):
            return None
        return torch.cat(
            [
                torch.full((param.numel(),), flag, dtype=torch.bool, device=param.device)
                for group, flag in zip(self.param_groups, flags, strict=True)
                for param in group["params"]
            ]
        )
