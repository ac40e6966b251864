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
                raise ValueError(
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
