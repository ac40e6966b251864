"""Loss and accuracy of a classifier over a whole split, in eval mode and without gradients."""

from __future__ import annotations

import torch

from workbench.inputs import LossFn
from workbench.modes import eval_mode


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1024
) -> dict[str, float]:
    """Mean loss (``loss_fn``, a mean-reduced loss, averaged per sample over chunks) and accuracy (argmax of the
    outputs against the targets, a fraction in [0, 1]) of ``model`` on ``(inputs, targets)``."""
    total_loss, correct = 0.0, 0
    with eval_mode(model):
        for start in range(0, inputs.shape[0], batch_size):
            logits = model(inputs[start : start + batch_size])
            labels = targets[start : start + batch_size]
            total_loss += float(loss_fn(logits.float(), labels)) * labels.shape[0]
            correct += int((logits.argmax(dim=1) == labels).sum())
    count = max(1, inputs.shape[0])
    return {"loss": total_loss / count, "accuracy": correct / count}
