"""A model's loss, accuracy and extra metrics over batches, in eval mode and without gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from workbench.batching import batch_size
from workbench.losses import BatchLoss
from workbench.modes import eval_mode

#: ``metrics_fn(model, batch)`` → named scalars (means over the batch's samples).
Metrics = Callable[[torch.nn.Module, Any], dict[str, Any]]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loss: BatchLoss, batches: Iterable[Any], metrics_fn: Metrics | None = None
) -> dict[str, float]:
    """Means over all samples of the batches (each batch's mean weighted by its size): ``loss`` (units of the
    loss, nats for cross-entropy), ``accuracy`` (a fraction in [0, 1]; only when the loss reports one for every
    batch, unless ``metrics_fn`` returns its own) and every metric ``metrics_fn`` returns.

    Raises:
        ValueError: naming ``metrics_fn`` when it returns something other than a dict of scalars.
    """
    totals: dict[str, float] = {}
    count, loss_accuracy = 0, 0.0
    with eval_mode(model):
        for batch in batches:
            size = batch_size(batch)
            value, accuracy = loss.loss_and_accuracy(model, batch)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"loss_fn must return a scalar tensor (the mean loss over the batch); it returned {shape}"
                )
            values = {"loss": value}
            if accuracy is None or loss_accuracy is None:
                loss_accuracy = None
            else:
                loss_accuracy += float(accuracy) * size
            if metrics_fn is not None:
                extra = metrics_fn(model, batch)
                if not isinstance(extra, dict):
                    raise ValueError(f"metrics_fn must return a dict of scalars, got {type(extra).__name__}")
                values.update(extra)
            for name, number in values.items():
                totals[name] = totals.get(name, 0.0) + float(number) * size
            count += size
    if loss_accuracy is not None and "accuracy" not in totals:  # the loss's own accuracy, unless metrics_fn has one
        totals["accuracy"] = loss_accuracy
    return {name: total / max(count, 1) for name, total in totals.items()}
