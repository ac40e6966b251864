"""SharpnessAware: the two-pass step every SAM variant shares, around any ``torch.optim`` base optimizer."""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from workbench._checks import check_float
from workbench.curvature import EigenResult, SymmetricOperator
from workbench.devices import to_host
from workbench.modes import eval_mode
from workbench.optim.closure_hessian import closure_hessian
from workbench.optim.record import NORM_NAMES, TRACKING_NAMES, StepRecord
from workbench.optim.tracker import EigenTracker
from workbench.optim.train_mode_guard import (
    TrainModeLayerError,
    computes_the_same_in_train_and_eval,
    forbid_train_mode,
)
from workbench.optim.wrapped import Closure, WrappedOptimizer, detached_result
from workbench.params import unflatten

#: Largest relative difference between the eval-mode and the training-mode loss of one batch that still counts as
#: "the model computes the same in both modes" (float32 rounding, e.g. a GPU's reduction order, stays far below).
_SAME_LOSS_RTOL = 1e-5


@dataclass
class _Ascent:
    """What ``first_step`` leaves for ``second_step``: g, θ and the scalars of ε (ε itself is not kept)."""

    gradient: torch.Tensor
    eigenvector: torch.Tensor | None
    weights: list[torch.Tensor]  # θ before the perturbation, restored exactly
    buffers: list[tuple[torch.Tensor, torch.Tensor]]  # (buffer, its value after the first pass), with model=
    refreshed: bool


class SharpnessAware(WrappedOptimizer, metaclass=ABCMeta):
    """A sharpness-aware optimizer: ascend to θ + ε, take the gradient there, let the base optimizer step from θ.

    One step (``step(closure)``):

    1. if the eigen-tracker is due, re-estimate the top Hessian eigenvector v on this batch at θ
       (``refresh_eigenvector``; with ``model`` given, in eval mode as the published Eigen-SAM code does);
    2. g = ∇L(θ) (first closure call); ε = ``perturbation(g, v)``; θ ← θ + ε;
    3. g_adv = ∇L(θ + ε) (second closure call);
    4. θ is restored exactly (from a copy, not by subtracting ε); with ``model`` given, so is every buffer of the
       model (BatchNorm running statistics and counters) as the first pass left it; the gradient becomes
       d = ``descent_direction(g, g_adv, v)`` and the base optimizer steps with it (momentum, weight decay,
       schedules and state all the base optimizer's own). ``.grad`` holds d afterwards.

    When the first pass computes what the refresh's pass would (see "Shared first pass" below), steps 1 and 2 are
    one closure call whose gradient graph serves the refresh's Hessian-vector products: one forward and backward
    pass fewer per refresh, the same v and g.

    Subclasses supply ``perturbation`` and, optionally, ``descent_direction`` and ``orientation``, each a thin
    wrapper of the pure functions in ``workbench.optim.rules``.

    Settings per parameter group: ``rho`` (and each method's own, e.g. ``alpha`` and ``freq``) live in
    ``defaults`` and in every entry of ``param_groups`` beside ``lr``, as in davda54/sam: they may differ per group
    (ε = ρ_group·ĝ on each group's coordinates, with ĝ the unit gradient of all parameters), are saved and restored
    with ``state_dict``, and a scheduler may move them between steps (GSAM moves ρ with the learning rate).
    ``freq`` sets the refresh period of the one eigenvector all groups share, so it must agree across groups.

    Without ``model``, the optimizer cannot change modes: the perturbed pass updates BatchNorm statistics like
    any training-mode forward pass (davda54/sam's behaviour; its ``bypass_bn`` habit is in ``workbench.optim``:
    ``disable_running_stats(model)`` before the second pass, ``enable_running_stats(model)`` before the next). The
    eigenvector refresh must see the model in eval mode: without ``model``, a refresh whose closure runs BatchNorm
    or dropout in training mode stops with a ValueError that says to pass ``model=`` (or to call ``model.eval()``
    before refreshing by hand). Pass ``model=`` for the published behaviour.

    Shared first pass: a due refresh takes its products from the first pass's own gradient graph (built with
    ``create_graph=True``) when no ``refresh_closure`` and no grad_scaler are given, no ``hessian_hook`` is set, and
    the first pass computes the eval-mode loss: always without ``model`` (the refresh then runs in the closure's
    mode anyway, BatchNorm and dropout in training mode refused), and with ``model`` when no BatchNorm,
    InstanceNorm or dropout with p > 0 is among its modules and the first refresh verified it: that refresh runs
    its own eval-mode pass, and the passes are shared from the next refresh on only if the first pass, in training
    mode, returned the same loss (so a custom module that branches on ``self.training`` by itself shows there). A
    call of BatchNorm, dropout (p > 0) or random sampling (stochastic depth, DropPath) in training mode during a
    shared pass switches the optimizer back to separate eval-mode refreshes for good; so does a random draw of the
    closure's own (input noise, say), which the check cannot tell from a model's. ``refresh_closure=closure`` always
    keeps the refresh's own eval-mode pass.

    Closure protocol (as ``torch.optim.LBFGS``): ``closure()`` computes the loss on the current batch, calls
    ``loss.backward()`` and returns the loss; the optimizer zeroes the gradients before each call and calls it
    twice per step (three times when v is refreshed on a pass of its own; see "Shared first pass"). Manual loops can
    use davda54/sam's vocabulary instead:
    ``loss.backward(); opt.first_step(zero_grad=True); loss_fn(model(x), y).backward(); opt.second_step()``,
    with ``if opt.refresh_due: opt.refresh_eigenvector(closure)`` before it for the eigenvector methods.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer. All on one device.
        base_optimizer: a ``torch.optim.Optimizer`` class; it shares this optimizer's parameter groups, so
            learning-rate schedulers work on either.
        rho: ρ > 0, the perturbation radius (the default of every group; a group may set its own).
        tracker: the ``EigenTracker`` for methods that use the top eigenvector, else ``None``.
        model: the module the parameters belong to, for the BatchNorm and eval-mode handling above.
        group_defaults: the method's own per-group settings with their defaults (e.g. ``alpha``, ``freq``).
        base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ``weight_decay``, ...).

    Attributes:
        last_step: the ``StepRecord`` of the last completed step (``None`` before the first).
        step_count: number of completed steps.
    """

    #: Applied to the closure's Hessian before the eigen-tracker refreshes on it (None: the Hessian as it is).
    #: ``workbench.distributed`` sets it to average the products across processes, each holding a shard.
    hessian_hook: Callable[[SymmetricOperator], SymmetricOperator] | None = None

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        *,
        rho: float,
        tracker: EigenTracker | None = None,
        model: torch.nn.Module | None = None,
        group_defaults: dict[str, Any] | None = None,
        **base_kwargs: Any,
    ) -> None:
        if model is not None and not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
        super().__init__(params, base_optimizer, {"rho": rho, **(group_defaults or {})}, **base_kwargs)
        for group in self.param_groups:
            self.check_group(group)
        self.tracker = tracker
        self.model = model
        self._ascent: _Ascent | None = None
        self._refreshed = False
        self._mode_free: bool | None = None  # with model: whether it computes the same in train and eval mode
        if tracker is not None:
            tracker.freq = self._shared_setting("freq")

    def check_group(self, group: dict[str, Any]) -> None:
        """Check a parameter group's own settings (ρ > 0 here; subclasses add theirs).

        Raises:
            ValueError: naming the setting and its allowed range.
        """
        check_float("rho", group["rho"], minimum=0.0, min_inclusive=False)

    @property
    def rho(self) -> float | torch.Tensor:
        """ρ: one float when every group has the same, else per coordinate ``(n,)`` (see ``group_values``)."""
        return self.group_values("rho")

    # -- the rules a method supplies -------------------------------------------------------------------------

    @abstractmethod
    def perturbation(self, gradient: torch.Tensor, eigenvector: torch.Tensor | None) -> torch.Tensor:
        """ε for the flat gradient g ``(n,)`` and the tracked eigenvector (``None`` before the first refresh)."""

    def descent_direction(
        self, gradient: torch.Tensor, adversarial_gradient: torch.Tensor, eigenvector: torch.Tensor | None
    ) -> torch.Tensor:
        """The direction d ``(n,)`` handed to the base optimizer; SAM's is g_adv itself."""
        return adversarial_gradient

    def orientation(
        self, gradient: torch.Tensor, adversarial_gradient: torch.Tensor, eigenvector: torch.Tensor
    ) -> torch.Tensor:
        """±1 (0-dim) multiplying the tracked v before ``descent_direction``; +1 keeps v as computed."""
        return torch.ones((), dtype=eigenvector.dtype, device=eigenvector.device)

    # -- the step ---------------------------------------------------------------------------------------------

    def step(self, closure: Closure | None = None, *, refresh_closure: Closure | None = None) -> Any:
        """One sharpness-aware step; returns the loss of the first pass (at θ), detached.

        ``refresh_closure`` (default ``closure``, whose first pass then also serves the refresh where it can: see
        "Shared first pass") is the closure the eigenvector refresh runs: under mixed precision, pass one that
        computes the loss in float32 without loss scaling, so that v and λ are those of the true Hessian. With a
        ``grad_scaler``, each pass's gradients are unscaled before use, and when either
        pass's are not finite the step is skipped whole (θ restored, no update) and the scaler lowers its scale.

        Raises:
            ValueError: naming ``closure`` when it is missing, returns no loss or leaves every gradient empty; or
                naming ``refresh_closure`` when a refresh is due under a grad_scaler without one.
        """
        closure = self._require_closure(closure)
        loss = self._refresh_before_step(closure, refresh_closure) if self.refresh_due else None
        if loss is None:  # the refresh did not run the first pass itself
            loss = self._run_closure(closure)
        loss = detached_result(loss)
        if not self._unscale(self):
            self.last_step = self._skipped_record(self._flat_gradient(self._params(), "step"))
            return loss
        self.first_step()  # the next closure run zeroes the gradients
        self._run_closure(closure)
        if not self._unscale(self.base_optimizer):
            ascent, self._ascent = self._ascent, None
            self._restore(ascent)
            self.last_step = self._skipped_record(ascent.gradient)
            return loss
        self.second_step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()
        return loss

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Read g from ``.grad``, compute ε and move the parameters to θ + ε (saving θ and, with ``model``, buffers).

        Memory: g (flat) and θ (per parameter) are kept until ``second_step``; ε is not (it is recomputed there,
        exactly, for the step record), so the second pass runs with two extra copies of the parameters.

        Raises:
            ValueError: when no parameter has a gradient.
        """
        params = self._params()
        gradient = self._flat_gradient(params, "first_step")
        eigenvector = self._eigenvector(params)
        weights = [param.detach().clone() for param in params]
        buffers = [] if self.model is None else [(buffer, buffer.clone()) for buffer in self.model.buffers()]
        torch._foreach_add_(params, unflatten(self.perturbation(gradient, eigenvector), params))
        self._ascent = _Ascent(gradient, eigenvector, weights, buffers, self._refreshed)
        self._refreshed = False
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Read g_adv from ``.grad``, restore θ (and buffers), and let the base optimizer step along the direction.

        Raises:
            RuntimeError: when ``first_step`` did not come first.
            ValueError: when no parameter has a gradient.
        """
        if self._ascent is None:
            raise RuntimeError("second_step() needs first_step() first: the parameters are not at θ + ε")
        ascent, self._ascent = self._ascent, None
        params = self._params()
        self._restore(ascent)  # θ's copy is released before any new vector is made
        adversarial = self._flat_gradient(params, "second_step")
        perturbation = self.perturbation(ascent.gradient, ascent.eigenvector)  # at θ again: the ε of first_step
        eigenvector, sign = ascent.eigenvector, None
        if eigenvector is not None:
            sign = self.orientation(ascent.gradient, adversarial, eigenvector)
            eigenvector = sign * eigenvector
        direction = self.descent_direction(ascent.gradient, adversarial, eigenvector)
        if direction is not adversarial:
            grads = [param.grad for param in params]
            pieces = unflatten(direction, params)
            torch._foreach_copy_(
                [grad for grad in grads if grad is not None],
                [piece for grad, piece in zip(grads, pieces, strict=True) if grad is not None],
            )
        self.base_optimizer.step()
        self.last_step = self._record(ascent, perturbation, adversarial, direction, eigenvector, sign)
        self.step_count += 1
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def _restore(self, ascent: _Ascent) -> None:
        """θ (exactly, from the copy, which is then released) and, with ``model``, every buffer as the first pass
        left them."""
        torch._foreach_copy_(self._params(), ascent.weights)
        ascent.weights.clear()
        for buffer, value in ascent.buffers:
            buffer.copy_(value)

    # -- the eigenvector -------------------------------------------------------------------------------------

    @property
    def refresh_due(self) -> bool:
        """Whether the tracker's schedule asks for a refresh before the next step (always False without one)."""
        if self.tracker is None:
            return False
        self.tracker.freq = self._shared_setting("freq")
        return self.tracker.due(self.step_count)

    def _refresh_before_step(self, closure: Closure, refresh_closure: Closure | None) -> Any:
        """The due refresh of a step: in the first pass itself where it can ("Shared first pass"; returns that
        pass's loss), else on its own pass of ``refresh_closure`` or ``closure`` (returns None).

        Raises:
            ValueError: naming ``refresh_closure`` when it is missing under a grad_scaler.
        """
        if refresh_closure is None and self._first_pass_can_refresh():
            if self.model is not None and self._mode_free is None:
                return self._refresh_and_verify_modes(closure)
            loss = self._refresh_during_first_pass(closure)
            if loss is not None:
                return loss
        if refresh_closure is None and self.grad_scaler is not None:
            raise ValueError(
                "refresh_closure is required with a grad_scaler: the eigenvector refresh needs the loss "
                "unscaled (and in float32)"
            )
        self.refresh_eigenvector(self._require_closure(refresh_closure or closure))
        return None

    def _first_pass_can_refresh(self) -> bool:
        """Whether the refresh may take its products from the first pass's own gradient graph: no grad_scaler and
        no ``hessian_hook``, and the first pass computes what the refresh's eval-mode pass would (without
        ``model``: always, since the refresh then runs in the closure's own mode too; with it: when
        ``computes_the_same_in_train_and_eval(model)``, to be verified by the first refresh while ``_mode_free``
        is None, and until a layer in training mode shows otherwise)."""
        if self.grad_scaler is not None or self.hessian_hook is not None:
            return False
        if self.model is None:
            return True
        if self._mode_free is None and not computes_the_same_in_train_and_eval(self.model):
            self._mode_free = False
        return self._mode_free is not False

    def _refresh_and_verify_modes(self, closure: Closure) -> Any:
        """The first refresh where ``model`` looks free of train-mode layers: on its own eval-mode pass, then the
        step's first pass in training mode; later refreshes share the first pass only if both passes returned the
        same loss (relative difference at most ``_SAME_LOSS_RTOL``: one host read, once). Returns the first pass's
        loss."""
        eval_losses: list[Any] = []

        def recorded() -> Any:
            result = closure()
            eval_losses.append(detached_result(result))  # the eval pass's graph is not kept through the next pass
            return result

        self.refresh_eigenvector(recorded)
        loss = self._run_closure(closure)
        self._mode_free = _same_loss(eval_losses[0], loss)
        return loss

    def _refresh_during_first_pass(self, closure: Closure) -> Any:
        """The first pass, run once with graph-building backward: v is refreshed on its Hessian, then its gradient
        (detached) stays in ``.grad`` for ``first_step``. Returns the closure's loss, or None when, with ``model``,
        the closure ran BatchNorm, dropout (p > 0) or random sampling (e.g. stochastic depth) in training mode
        (nothing is refreshed then, the gradients are empty, and later refreshes use their own eval-mode pass).

        Raises:
            ValueError: without ``model``, when the closure runs BatchNorm or dropout in training mode (as
                ``refresh_eigenvector``), or naming ``closure`` when it misbehaves.
        """
        params = self._params()
        losses: list[Any] = []

        def first_pass() -> Any:  # with model, random sampling (stochastic depth) also stops the shared pass
            with forbid_train_mode(type(self).__name__, random_ops=self.model is not None):
                losses.append(closure())
            return losses[-1]

        others = self._other_parameters(params)
        try:
            with closure_hessian(first_pass, params, others=others, keep_others=True) as hessian:
                self._refresh_on(hessian)
                gradients = [None if param.grad is None else param.grad.detach() for param in params]
        except TrainModeLayerError:
            if self.model is None:
                raise
            self._mode_free = False
            return None
        for param, gradient in zip(params, gradients, strict=True):
            param.grad = gradient
        return losses[0]

    def _other_parameters(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """``model``'s parameters outside this optimizer (a body another optimizer trains; none without ``model``),
        whose gradients a refresh pass must leave as they were."""
        if self.model is None:
            return []
        own = {id(param) for param in params}
        return [param for param in self.model.parameters() if id(param) not in own]

    def refresh_eigenvector(self, closure: Closure) -> EigenResult:
        """Re-estimate v on the closure's batch at the current θ (exact HVPs through the closure's backward).

        With ``model`` given the closure runs in eval mode; without it, it must not run BatchNorm or dropout in
        training mode. The gradients are ``None`` afterwards; those of ``model``'s other parameters are as before,
        and other tensors that received one (e.g. an input the closure differentiates) keep it without its graph.

        Raises:
            ValueError: when this optimizer tracks no eigenvector, when the closure runs a train-mode layer
                without ``model``, or naming ``closure`` when it misbehaves.
        """
        if self.tracker is None:
            raise ValueError(f"{type(self).__name__} tracks no eigenvector (it has no EigenTracker)")
        owner = type(self).__name__
        mode = forbid_train_mode(owner) if self.model is None else eval_mode(self.model)
        params = self._params()
        with mode, closure_hessian(closure, params, others=self._other_parameters(params)) as hessian:
            return self._refresh_on(hessian)

    def _refresh_on(self, hessian: SymmetricOperator) -> EigenResult:
        """The tracker's refresh on the closure's Hessian (through ``hessian_hook`` when set), marked for the next
        step's record."""
        result = self.tracker.refresh(hessian if self.hessian_hook is None else self.hessian_hook(hessian))
        self._refreshed = True
        return result

    # -- state ------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``WrappedOptimizer.state_dict``, taken only between two steps.

        Raises:
            RuntimeError: between ``first_step`` and ``second_step``, where the parameters sit at θ + ε and the
                saved θ and gradient live only in this object: a state saved there would lose them.
        """
        if self._ascent is not None:
            raise RuntimeError(
                "state_dict() was called between first_step() and second_step(): the parameters are at θ + ε and "
                "θ itself is held only until second_step(); save the state after second_step()"
            )
        return super().state_dict()

    def _extra_state(self) -> dict[str, Any]:
        return {"tracker": None if self.tracker is None else self.tracker.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("tracker")
        if (saved is None) != (self.tracker is None):
            raise ValueError(
                f"state_dict was saved by an optimizer {'without' if saved is None else 'with'} an "
                f"eigen-tracker, but {type(self).__name__} {'has' if self.tracker is not None else 'has no'} one"
            )
        if self.tracker is not None:
            self.tracker.load_state_dict(saved, like=self._params()[0])

    # -- helpers ----------------------------------------------------------------------------------------------

    def _shared_setting(self, key: str) -> Any:
        """A setting that must be the same in every group (``freq``: one eigenvector serves all groups)."""
        values = {group[key] for group in self.param_groups}
        if len(values) != 1:
            raise ValueError(
                f"{key} must be the same in every parameter group (one eigenvector serves them all), "
                f"got {sorted(values)}"
            )
        return values.pop()

    def _eigenvector(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        if self.tracker is None or self.tracker.vector is None:
            return None
        vector = self.tracker.vector
        numel = sum(param.numel() for param in params)
        if vector.numel() != numel:
            raise ValueError(f"the tracked eigenvector has {vector.numel()} entries but the parameters have {numel}")
        if vector.device != params[0].device or vector.dtype != params[0].dtype:  # e.g. set_vector on the CPU
            self.tracker.vector = vector = vector.to(device=params[0].device, dtype=params[0].dtype)
        return vector

    def _record(
        self,
        ascent: _Ascent,
        perturbation: torch.Tensor,
        adversarial: torch.Tensor,
        direction: torch.Tensor,
        eigenvector: torch.Tensor | None,
        sign: torch.Tensor | None,
    ) -> StepRecord:
        norms = torch.stack([ascent.gradient.norm(), perturbation.norm(), adversarial.norm()])
        tracker = self.tracker
        if tracker is None:
            values, names = norms, NORM_NAMES
        elif eigenvector is None or sign is None:
            missing = torch.full((5,), math.nan, dtype=norms.dtype, device=norms.device)
            values, names = torch.cat([norms, missing, tracker.eigenvalue_tensor(norms)[None]]), TRACKING_NAMES
        else:
            angles = _angles(norms, perturbation, ascent.gradient, adversarial, direction, eigenvector)
            values = torch.cat([norms, angles, sign.to(norms.dtype)[None], tracker.eigenvalue_tensor(norms)[None]])
            names = TRACKING_NAMES
        return StepRecord(
            step=self.step_count,
            refreshed=ascent.refreshed,
            gradient=ascent.gradient,
            perturbation=perturbation,
            scalar_values=values,
            scalar_names=names,
            tracking=tracker is not None,
        )


def _loss_tensor(loss: Any) -> torch.Tensor | None:
    """The loss tensor of a closure's result: the result itself, or the first item of a tuple or list (a closure
    that also returns its outputs); None for a number."""
    if isinstance(loss, tuple | list) and loss:
        loss = loss[0]
    return loss if isinstance(loss, torch.Tensor) else None


def _same_loss(eval_loss: Any, train_loss: Any) -> bool:
    """Whether two closure results (losses as tensors or numbers, or tuples led by one) hold the same loss within
    ``_SAME_LOSS_RTOL``, with one host copy; NaN, or a loss that is not one number, never agrees."""
    values = []
    for result in (eval_loss, train_loss):
        loss = _loss_tensor(result)
        if loss is None and isinstance(result, int | float):
            loss = torch.tensor(float(result))
        if loss is None or loss.numel() != 1:
            return False
        values.append(loss.detach().reshape(1).to(torch.float64))
    first, second = to_host(torch.cat([values[0], values[1].to(values[0].device)]))
    return bool(torch.isclose(first, second, rtol=_SAME_LOSS_RTOL, atol=0.0))


def _angles(
    norms: torch.Tensor,
    perturbation: torch.Tensor,
    gradient: torch.Tensor,
    adversarial: torch.Tensor,
    direction: torch.Tensor,
    eigenvector: torch.Tensor,
) -> torch.Tensor:
    """cos∠(ε, v) and the angles ∠(g, v), ∠(g_adv, v), ∠(d, v) in degrees, ``(4,)``, from ``norms`` = (‖g‖, ‖ε‖,
    ‖g_adv‖): the formulas of ``rules.cosine`` and ``rules.angle_degrees``, with each norm taken once."""
    direction_norm = norms[2] if direction is adversarial else direction.norm()
    lengths = torch.stack([norms[1], norms[0], norms[2], direction_norm]) * eigenvector.norm()
    dots = torch.stack([torch.dot(vector, eigenvector) for vector in (perturbation, gradient, adversarial, direction)])
    cosines = torch.where(lengths > 0, dots / lengths, torch.full_like(dots, math.nan))
    return torch.cat([cosines[:1], torch.rad2deg(torch.arccos(cosines[1:].clamp(-1.0, 1.0)))])
