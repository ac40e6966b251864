"""SAM and ASAM: the sharpness-aware methods that need no eigenvector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench._checks import check_bool, check_float
from workbench.optim.rules import asam_perturbation, sam_perturbation
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.params import flatten

#: What davda54/sam adds to ‖T g‖ before dividing by it in its element-wise ASAM (``adaptive=True``).
DAVDA54_NORM_OFFSET = 1e-12


class SAM(SharpnessAware):
    """Sharpness-Aware Minimization (Foret et al., 2021): ε = ρ·g/‖g‖, descend with g_adv = ∇L(θ + ε).

    ``SAM(params, base_optimizer=torch.optim.SGD, rho=0.05, adaptive=False, model=None, **base_kwargs)``: the
    signature of davda54/sam, so ``SAM(model.parameters(), torch.optim.SGD, rho=2.0, adaptive=True, lr=0.1,
    momentum=0.9)`` and its loops (``first_step(zero_grad=True)`` / ``second_step(zero_grad=True)``, or
    ``step(closure)``) run unchanged. ρ > 0 (0.05 in the paper for CIFAR-10). See ``SharpnessAware`` for the step,
    the closure protocol and ``model``; ``disable_running_stats`` / ``enable_running_stats`` are davda54's
    ``bypass_bn`` helpers.

    ``adaptive=True`` is davda54/sam's element-wise ASAM, with its formula: ε = ρ·T²g / (‖T g‖ + 1e-12) with
    T = diag(|θ|) (no η: a weight at zero stays put). Like ``rho`` it is a per-group setting (``"adaptive"`` in
    ``param_groups``, as in davda54/sam and as ASAM's group flag): groups with ``"adaptive": False`` use T = 1 in
    the same formula. With no adaptive group, ε = ρ·g/‖g‖ exactly (davda54 divides by ‖g‖ + 1e-12, a relative
    difference of 1e-12/‖g‖). ``ASAM`` is Kwon et al.'s published variant (T = |θ| + η).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        adaptive: bool = False,
        *,
        model: torch.nn.Module | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            params, base_optimizer, rho=rho, model=model, group_defaults={"adaptive": adaptive}, **base_kwargs
        )

    def check_group(self, group: dict[str, Any]) -> None:
        """ρ > 0 and ``adaptive`` a bool in every group."""
        super().check_group(group)
        check_bool("adaptive", group["adaptive"])

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """ε = ρ·ĝ (see ``rules.sam_perturbation``); with adaptive groups, davda54/sam's element-wise ASAM
        ε = ρ·T²g / (‖T g‖ + 1e-12), T = |θ| there and 1 elsewhere (``rules.asam_perturbation`` with η = 0)."""
        if not any(group["adaptive"] for group in self.param_groups):
            return sam_perturbation(gradient, rho=self.rho)
        weights = flatten([param.detach() for param in self._params()])
        return asam_perturbation(
            gradient,
            weights,
            rho=self.rho,
            eta=0.0,
            adaptive=self.group_mask("adaptive"),
            norm_offset=DAVDA54_NORM_OFFSET,
        )


class ASAM(SharpnessAware):
    """Adaptive SAM (Kwon et al., 2021): ε = ρ·T²g/‖T g‖ with T = diag(|θ| + η), a scale-invariant radius.

    ``ASAM(params, base_optimizer=torch.optim.SGD, rho=0.5, eta=0.01, model=None, **base_kwargs)``; defaults
    are the published code's (ρ = 0.5 on CIFAR-10, 1.0 on CIFAR-100). ρ > 0; η ≥ 0; both are per-group settings,
    as is ``"adaptive"`` (True by default here).

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
        super().__init__(
            params, base_optimizer, rho=rho, model=model, group_defaults={"eta": eta, "adaptive": True}, **base_kwargs
        )

    def check_group(self, group: dict[str, Any]) -> None:
        """ρ > 0, η ≥ 0 and ``adaptive`` a bool in every group."""
        super().check_group(group)
        check_float("eta", group["eta"], minimum=0.0)
        check_bool("adaptive", group["adaptive"])

    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """ε = ρ·T²g/‖T g‖ (see ``rules.asam_perturbation``), T = 1 in groups with ``"adaptive": False``."""
        weights = flatten([param.detach() for param in self._params()])
        eta = self.group_values("eta")
        return asam_perturbation(gradient, weights, rho=self.rho, eta=eta, adaptive=self.group_mask("adaptive"))
