"""The optimizer of a ``TrainConfig``, built from the registry with SGD (momentum, weight decay) as its base."""

from __future__ import annotations

import torch

from workbench.optim import WrappedOptimizer, optimizer_entry
from workbench.train.config import TrainConfig


def build_optimizer(config: TrainConfig, model: torch.nn.Module, steps_per_epoch: int) -> WrappedOptimizer:
    """``config.optimizer`` over ``model``'s trainable parameters, with the options the config sets (the paper
    defaults for the others) and ``SGD(lr, momentum, weight_decay)`` as its base.

    The eigenvector methods restart their refresh schedule every epoch (``steps_per_epoch``), as their published
    training loops do; every sharpness-aware method gets ``model``, so BatchNorm statistics are kept from the
    first pass only and the eigenvector is refreshed in eval mode.
    """
    params = [param for param in model.parameters() if param.requires_grad]
    return optimizer_entry(config.optimizer).build(
        params,
        options=config.optimizer_options,
        model=model,
        seed=config.seed,
        epoch_length=steps_per_epoch,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
