"""PlainStep: the base optimizer alone, behind the same closure step and step record as the SAM family."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from workbench.optim.record import StepRecord
from workbench.optim.wrapped import Closure, WrappedOptimizer, detached_result


class PlainStep(WrappedOptimizer):
    """One gradient, one step of the base optimizer: ``PlainStep(params, torch.optim.SGD, lr=0.1, momentum=0.9)``.

    It updates exactly as the base optimizer does (one closure call per step); what it adds is the interface the
    training loop reads every optimizer through: ``step(closure)`` zeroes the gradients, runs the closure and
    steps, and ``last_step`` records g (flat) and ‖g‖, so probes can measure ∠(g, v1) for plain SGD too.

    Args:
        params: parameters or parameter groups.
        base_optimizer: any ``torch.optim.Optimizer`` class (default SGD).
        base_kwargs: its arguments (``lr``, ``momentum``, ``weight_decay``, ...).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, {}, **base_kwargs)

    def step(self, closure: Closure | None = None, *, refresh_closure: Closure | None = None) -> Any:
        """Zero the gradients, run ``closure`` (loss, backward), let the base optimizer step; returns the loss.
        (``refresh_closure`` is accepted for the common interface; a plain step refreshes nothing.) With a
        ``grad_scaler``, the gradients are unscaled first and a non-finite step is skipped.

        Raises:
            ValueError: naming ``closure`` when it is missing, returns no loss or leaves every gradient empty.
        """
        loss = self._run_closure(self._require_closure(closure))
        finite = self._unscale(self.base_optimizer)
        gradient = self._flat_gradient(self._params(), "step")
        loss = detached_result(loss)
        if not finite:
            self.last_step = self._skipped_record(gradient)
            return loss
        self.base_optimizer.step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()
        self.last_step = StepRecord(
            step=self.step_count,
            refreshed=False,
            gradient=gradient,
            perturbation=None,
            scalar_values=gradient.norm()[None],
            scalar_names=("gradient_norm",),
            tracking=False,
        )
        self.step_count += 1
        return loss
