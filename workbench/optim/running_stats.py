"""Switch BatchNorm running statistics off for SAM's second (perturbed) pass and on again: davda54/sam's ``bypass_bn``.

In a manual two-pass loop without ``model=``, both training-mode forward passes would update the running mean and
variance, the second one with statistics of the perturbed weights θ + ε. The loop from davda54/sam's example::

    enable_running_stats(model)
    loss_fn(model(x), y).backward()
    optimizer.first_step(zero_grad=True)
    disable_running_stats(model)
    loss_fn(model(x), y).backward()
    optimizer.second_step(zero_grad=True)

keeps the first pass's update only. (A sharpness-aware optimizer given ``model=`` does the same by itself: it
restores every buffer as the first pass left it.)
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: The attribute that holds a layer's own ``track_running_stats`` while its statistics are switched off.
_SAVED_FLAG = "_workbench_saved_track_running_stats"


def disable_running_stats(model: nn.Module) -> None:
    """Stop every BatchNorm layer of ``model`` from updating its running statistics until ``enable_running_stats``.

    In training mode the layers still normalise with the batch's own statistics, so the pass computes the same
    loss and gradient; the running mean and variance stay as they were, exactly as with davda54/sam's
    ``bypass_bn`` (which sets ``momentum = 0``). Unlike it, ``num_batches_tracked`` stays too (the layers stop
    tracking for the pass instead of averaging with weight 0), so a layer with ``momentum=None`` (a cumulative
    average over that count) keeps its average right. Calling it twice in a row is harmless.
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not hasattr(module, _SAVED_FLAG):
            setattr(module, _SAVED_FLAG, module.track_running_stats)
            module.track_running_stats = False


def enable_running_stats(model: nn.Module) -> None:
    """Undo ``disable_running_stats``: every BatchNorm layer tracks its running statistics as it did before.

    Layers that were never switched off are left alone, so calling it first (as davda54/sam's loop does on the
    first step) is harmless.
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm) and hasattr(module, _SAVED_FLAG):
            module.track_running_stats = getattr(module, _SAVED_FLAG)
            delattr(module, _SAVED_FLAG)
