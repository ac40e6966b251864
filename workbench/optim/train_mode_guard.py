"""A guard for Hessian-vector products taken without the model at hand: layers in training mode are refused.

The eigen-tracker estimates v on the Hessian of the loss in eval mode (as the published Eigen-SAM and X-SAM code
does). An optimizer built from ``model.parameters()`` alone cannot switch the model to eval mode; a refresh then
would use batch statistics and move BatchNorm's running ones, or drop units at random, silently. Under
``forbid_train_mode`` those layers raise instead, with a message that says how to do it right.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

#: Functional layers whose ``training`` argument changes what they compute or mutate.
_TRAIN_MODE_LAYERS = {
    F.batch_norm: "BatchNorm",
    F.dropout: "dropout",
    F.dropout1d: "dropout",
    F.dropout2d: "dropout",
    F.dropout3d: "dropout",
    F.alpha_dropout: "dropout",
    F.feature_alpha_dropout: "dropout",
}
_SIGNATURES = {function: inspect.signature(function) for function in _TRAIN_MODE_LAYERS}


class TrainModeLayerError(ValueError):
    """A BatchNorm or dropout call in training mode where the Hessian must be the eval-mode one."""


class _ForbidTrainMode(TorchFunctionMode):
    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        layer = _TRAIN_MODE_LAYERS.get(func)
        if layer is not None:
            bound = _SIGNATURES[func].bind(*args, **kwargs)
            bound.apply_defaults()
            if bound.arguments["training"]:
                harm = "move its running statistics" if layer == "BatchNorm" else "make every product random"
                raise TrainModeLayerError(
                    f"{self.owner} estimates the top eigenvector in eval mode, but the closure ran {layer} in "
                    f"training mode, which would {harm}. "
                    f"Pass model=<your module> when building {self.owner} (it then switches to eval mode for the "
                    "refresh and restores the mode after), or call model.eval() before refresh_eigenvector()"
                )
        return func(*args, **kwargs)


@contextmanager
def forbid_train_mode(owner: str) -> Iterator[None]:
    """Within the block (this thread only), BatchNorm and dropout in training mode raise a ValueError naming
    ``owner`` (the optimizer) and the fix."""
    with _ForbidTrainMode(owner):
        yield


def computes_the_same_in_train_and_eval(model: nn.Module) -> bool:
    """Whether no submodule of ``model`` is of a kind that computes differently in training mode: normalisation
    with batch statistics (BatchNorm, InstanceNorm), dropout with p > 0, or recurrent and attention layers with
    dropout > 0. A custom module that branches on ``self.training`` itself is not recognised here (the shared first
    pass of ``SharpnessAware`` therefore also compares the two modes' losses at its first refresh)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return False
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return False
        if isinstance(module, nn.RNNBase | nn.MultiheadAttention) and module.dropout > 0:
            return False
    return True
