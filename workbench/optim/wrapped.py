"""WrappedOptimizer: a ``torch.optim`` optimizer around a base optimizer, stepped with a closure, recording each step.

Every optimizer the workbench trains with derives from it: ``PlainStep`` (the base optimizer alone) and
``SharpnessAware`` (the SAM family). They share the base optimizer's parameter groups (so learning-rate
schedulers, and schedulers of the family's own group settings such as ``rho``, work on either object), take
``step(closure)`` as ``torch.optim.LBFGS`` does, and leave a ``StepRecord`` of the step in ``last_step``: the
training loop reads every optimizer through this one interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from workbench.optim.closure_hessian import check_closure_result
from workbench.optim.record import StepRecord
from workbench.optim.tracker import EigenTracker
from workbench.params import flatten

Closure = Callable[[], Any]
STATE_KEY = "workbench"


def detached_result(result: Any) -> Any:
    """A closure's result as ``step`` returns it: a tensor detached, or a tuple or list (e.g. ``(loss, logits)``)
    with its tensors detached, so that nothing the caller keeps holds a pass's graph alive."""
    if isinstance(result, torch.Tensor):
        return result.detach()
    if isinstance(result, tuple | list):
        items = [detached_result(item) for item in result]
        return type(result)(*items) if hasattr(result, "_fields") else type(result)(items)  # a namedtuple: fields
    return result


class WrappedOptimizer(torch.optim.Optimizer):
    """The parts every workbench optimizer shares.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer. All on one device.
        base_optimizer: a ``torch.optim.Optimizer`` class; it is built over this optimizer's parameter groups with
            ``base_kwargs`` (``lr``, ``momentum``, ``weight_decay``, ...) and takes the actual update.
        defaults: this optimizer's own per-group settings (e.g. ``rho``), stored in every parameter group beside
            the base optimizer's, so they can differ per group, are saved in ``state_dict`` and can be scheduled.

    Mixed precision with float16: set ``grad_scaler`` to a ``torch.amp.GradScaler`` and let the closure call
    ``grad_scaler.scale(loss).backward()``. Each pass's gradients are then unscaled before anything reads them (ε
    is built from the true g), and a step whose gradients are not finite is skipped whole, the perturbation
    included, before the scaler updates its scale (see ``step`` of each class). bfloat16 needs no scaler.

    Attributes:
        last_step: the ``StepRecord`` of the last completed step (``None`` before the first).
        step_count: number of completed steps.
        tracker: the ``EigenTracker`` of a method that uses the top eigenvector, else ``None``.
        grad_scaler: the ``torch.amp.GradScaler`` the closure scales its loss with, or ``None``.
    """

    tracker: EigenTracker | None = None
    grad_scaler: torch.amp.GradScaler | None = None

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer],
        defaults: dict[str, Any],
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise ValueError(
                f"base_optimizer must be a torch.optim.Optimizer class such as torch.optim.SGD, got {base_optimizer!r}"
            )
        super().__init__(params, {**defaults, **base_kwargs})
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.step_count = 0
        self.last_step: StepRecord | None = None

    def _params(self) -> list[torch.Tensor]:
        return [param for group in self.param_groups for param in group["params"]]

    def _require_closure(self, closure: Closure | None) -> Closure:
        if closure is None:
            raise ValueError(
                f"closure is required: {type(self).__name__}.step needs a closure that computes the loss on the "
                "current batch, calls loss.backward() and returns the loss (like torch.optim.LBFGS)"
            )
        return torch.enable_grad()(closure)

    def _run_closure(self, closure: Closure) -> Any:
        self.zero_grad()
        loss = closure()
        check_closure_result(loss, [param.grad for param in self._params()])
        return loss

    def _unscale(self, key: torch.optim.Optimizer) -> bool:
        """Unscale the gradients in place with ``grad_scaler`` (recording its inf check under ``key``, one per
        pass); True when they are all finite (always True without a scaler)."""
        if self.grad_scaler is None:
            return True
        self.grad_scaler.unscale_(key)
        grads = [param.grad for param in self._params() if param.grad is not None]
        return bool(torch.stack([torch.isfinite(grad).all() for grad in grads]).all())

    def _skipped_record(self, gradient: torch.Tensor) -> StepRecord:
        """The record of a step skipped for non-finite gradients (the scaler then lowers its scale)."""
        self.zero_grad()
        self.grad_scaler.update()
        record = StepRecord(
            step=self.step_count,
            refreshed=False,
            gradient=gradient,
            perturbation=None,
            scalar_values=gradient.new_full((1,), float("nan")),
            scalar_names=("gradient_norm",),
            tracking=False,
            skipped=True,
        )
        self.step_count += 1
        return record

    def _flat_gradient(self, params: list[torch.Tensor], caller: str) -> torch.Tensor:
        grads = [param.grad for param in params]
        if all(grad is None for grad in grads):
            raise ValueError(f"{caller}() found no gradient on any parameter: call loss.backward() first")
        return flatten([torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params, strict=True)])

    def group_values(self, key: str) -> float | torch.Tensor:
        """The per-group setting ``key`` as one float when every group has the same value, else as a flat
        per-coordinate tensor ``(n,)`` on the parameters' device (what the rules in ``workbench.optim.rules`` take)."""
        values = [float(group[key]) for group in self.param_groups]
        if all(value == values[0] for value in values):
            return values[0]
        return torch.cat(
            [
                torch.full((param.numel(),), value, dtype=param.dtype, device=param.device)
                for group, value in zip(self.param_groups, values, strict=True)
                for param in group["params"]
            ]
        )

    def group_mask(self, key: str) -> torch.Tensor:
        """The boolean per-group setting ``key`` as a per-coordinate mask ``(n,)`` on the parameters' device: True on
        the coordinates of the groups where it is set (e.g. ``"adaptive"``)."""
        return torch.cat(
            [
                torch.full((param.numel(),), bool(group[key]), dtype=torch.bool, device=param.device)
                for group in self.param_groups
                for param in group["params"]
            ]
        )

    # -- state ------------------------------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """What a subclass saves beyond the base optimizer's state and the step count."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore ``_extra_state()``'s output."""

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (param groups with every setting, this optimizer's included) plus
        this optimizer's class name, step count and extra state (the eigen-tracker, for example)."""
        state = self.base_optimizer.state_dict()
        state[STATE_KEY] = {"class": type(self).__name__, "step_count": self.step_count, **self._extra_state()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s output, so that training continues exactly where it was saved. A setting the
        saved groups lack (one added to the class after the save, e.g. ``"adaptive"``) takes this optimizer's default.

        Raises:
            ValueError: naming ``state_dict`` when it was not saved by a workbench optimizer of this class.
        """
        state = dict(state_dict)
        ours = state.pop(STATE_KEY, None)
        if ours is None:
            raise ValueError(
                f"state_dict has no {STATE_KEY!r} entry: it was not saved by a workbench optimizer "
                f"(a {type(self).__name__} can load only what a {type(self).__name__} saved)"
            )
        if ours.get("class") != type(self).__name__:
            raise ValueError(
                f"state_dict was saved by optimizer class {ours.get('class')} and cannot be loaded into "
                f"{type(self).__name__}: build the optimizer the checkpoint was written with"
            )
        self._load_extra_state(ours)
        self.base_optimizer.load_state_dict(state)
        self.param_groups = self.base_optimizer.param_groups
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self.step_count = int(ours["step_count"])
