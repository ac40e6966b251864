"""The two forms of loss the workbench accepts, and the one form everything computes with.

* ``loss_fn(outputs, targets)`` (PyHessian's ``criterion``, ``F.cross_entropy``): for ``(inputs, targets)`` batches,
  the loss of ``model(inputs)`` against ``targets``. The curvature engine, probes and landscapes take it as before.
* ``loss_fn(model, batch)`` (Hugging Face's ``compute_loss``): any batch structure, e.g. a dict, and any way of
  calling the model. The ``Trainer`` takes this form; elsewhere mark it with ``batch_loss(fn)``.

Internally every loss is a ``BatchLoss`` (``as_batch_loss``). A loss that knows how to score its outputs (the
default cross-entropy) also reports the accuracy, from the same forward pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from workbench.batching import describe

OutputsLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ModelLoss = Callable[[torch.nn.Module, Any], torch.Tensor]

_MODEL_NAMES = ("model", "module", "net", "network")


class BatchLoss:
    """A loss of the form ``loss(model, batch) -> scalar tensor`` (mean over the batch's samples).

    Args:
        fn: the function; ``batch`` is whatever the data yields (moved to the model's device).
        name: a label for messages (default: the function's name).
    """

    def __init__(self, fn: ModelLoss, name: str | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"loss_fn must be callable as loss_fn(model, batch), got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        return self.fn(model, batch)

    def loss_and_accuracy(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss and, where the loss knows its outputs are class scores, the accuracy (else None)."""
        return self(model, batch), None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


#: What a public ``loss_fn`` argument may be: an (outputs, targets) loss or a ``BatchLoss``.
LossFn = OutputsLoss | BatchLoss


class LossOfOutputs(BatchLoss):
    """An ``(outputs, targets)`` loss on ``(inputs, targets)`` batches: ``fn(model(inputs), targets)``.

    Its accuracy is the fraction of targets equal to the arg-max over dim 1 of the outputs (class scores
    ``(B, C)`` or ``(B, C, ...)`` with integer targets ``(B, ...)``, the layout ``F.cross_entropy`` takes), reported
    when the shapes are those; None otherwise (e.g. a regression loss).
    """

    def __init__(self, fn: OutputsLoss, name: str | None = None) -> None:
        super().__init__(fn, name)

    def __call__(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = _pair(batch, self.name)
        return self.fn(model(inputs), targets)

    def loss_and_accuracy(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        inputs, targets = _pair(batch, self.name)
        outputs = model(inputs)
        loss = self.fn(outputs, targets)
        return loss, accuracy_of(outputs, targets)


def accuracy_of(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Mean of ``outputs.argmax(1) == targets`` for class scores and integer targets of matching shapes, else None."""
    integer = not targets.is_floating_point() and not targets.is_complex()
    matches = outputs.dim() >= 2 and tuple(outputs.shape[:1] + outputs.shape[2:]) == tuple(targets.shape)
    if not (integer and matches):
        return None
    return (outputs.argmax(dim=1) == targets).to(torch.float64).mean()


def batch_loss(fn: ModelLoss) -> BatchLoss:
    """Mark ``fn(model, batch)`` as a loss of that form, for the curvature engine, probes and landscapes:
    ``HessianOperator(model, batch_loss(lambda m, b: m(**b).loss), loader)``. (The ``Trainer`` takes this form
    unmarked.)"""
    return fn if isinstance(fn, BatchLoss) else BatchLoss(fn)


def as_batch_loss(loss_fn: LossFn) -> BatchLoss:
    """Any accepted loss as a ``BatchLoss``: a ``BatchLoss`` as it is, a plain callable as an (outputs, targets) loss.

    Raises:
        ValueError: for a non-callable, or a plain function whose first parameter is named like a model (``model``,
            ``module``, ``net``): that is a (model, batch) loss, which must be marked with ``batch_loss``.
    """
    if isinstance(loss_fn, BatchLoss):
        return loss_fn
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable as loss_fn(outputs, targets), got {loss_fn!r}")
    if _first_parameter(loss_fn) in _MODEL_NAMES:
        raise ValueError(
            f"loss_fn {getattr(loss_fn, '__name__', loss_fn)!r} looks like a (model, batch) loss: here a plain "
            "function is called as loss_fn(outputs, targets); wrap it as workbench.batch_loss(loss_fn)"
        )
    return LossOfOutputs(loss_fn)


def model_loss(loss_fn: ModelLoss | BatchLoss) -> BatchLoss:
    """The ``Trainer``'s form: a plain callable is ``loss_fn(model, batch)``; a ``BatchLoss`` stays as it is."""
    return loss_fn if isinstance(loss_fn, BatchLoss) else BatchLoss(loss_fn)


#: The default training loss: mean cross-entropy (nats) on ``(inputs, targets)`` batches, with accuracy.
CROSS_ENTROPY = LossOfOutputs(F.cross_entropy, name="cross_entropy")


class LossModule(torch.nn.Module):
    """``loss(model, batch)`` as a module whose parameters are the model's (prefixed ``model.``), so that
    ``torch.func.functional_call`` can evaluate any loss form at other parameter values."""

    def __init__(self, model: torch.nn.Module, loss: BatchLoss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Any, with_accuracy: bool = False) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The loss; with ``with_accuracy``, ``(loss, accuracy or None)``."""
        if with_accuracy:
            return self.loss.loss_and_accuracy(self.model, batch)
        return self.loss(self.model, batch)


def _pair(batch: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, list | tuple) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch):
        return batch[0], batch[1]
    raise ValueError(
        f"the loss {name!r} takes (outputs, targets), so each batch must be an (inputs, targets) pair of tensors; "
        f"got {describe(batch)}. For other batches pass a (model, batch) loss: to the Trainer as loss_fn=..., "
        "elsewhere as workbench.batch_loss(fn)"
    )


def _first_parameter(function: Callable[..., Any]) -> str | None:
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return None
    return parameters[0] if parameters else None
