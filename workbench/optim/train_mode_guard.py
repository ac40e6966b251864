"""A guard for Hessian-vector products taken without the model at hand: layers in training mode are refused.

The eigen-tracker estimates v on the Hessian of the loss in eval mode (as the published Eigen-SAM and X-SAM code
does). An optimizer built from ``model.parameters()`` alone cannot switch the model to eval mode; a refresh then
would use batch statistics and move BatchNorm's running ones, or drop units at random, silently. Under
``forbid_train_mode`` those layers raise instead, with a message that says how to do it right. Where a pass in
training mode stands in for the eval-mode one (the shared first pass), ``random_ops=True`` also refuses random
sampling (the Bernoulli masks of stochastic depth / DropPath, noise injection), which eval mode would not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

#: An argument of a call: its name, its position, its default.
_Argument = tuple[str, int, Any]


@dataclass(frozen=True)
class _Layer:
    """A functional layer that, called in training mode, computes or mutates what eval mode would not: when
    ``training`` is true (None: always), ``probability`` (dropout's) is > 0 (None: always), and ``statistics`` (the
    running ones it would move, absent when a layer keeps none and computes the same in eval mode) is given."""

    name: str
    training: _Argument | None
    probability: _Argument | None = None
    statistics: _Argument | None = None

    def in_training(self, args: tuple, kwargs: dict) -> bool:
        return (
            (self.training is None or bool(_argument(args, kwargs, *self.training)))
            and (self.probability is None or _argument(args, kwargs, *self.probability) > 0)
            and (self.statistics is None or _argument(args, kwargs, *self.statistics) is not None)
        )


_DROPOUT_P = ("p", 1, 0.5)
_RRELU = _Layer("RReLU", ("training", 3, False))
_DROPOUT = _Layer("dropout", ("training", 2, True), _DROPOUT_P)  # F.dropout's training defaults to True
_ALPHA_DROPOUT = _Layer("dropout", ("training", 2, False), _DROPOUT_P)  # F.alpha_dropout's to False
_TORCH_DROPOUT = _Layer("dropout", ("train", 2, None), ("p", 1, None))  # torch.dropout: both arguments required
_TORCH_DROPOUTS = (torch.dropout, torch.feature_dropout, torch.alpha_dropout, torch.feature_alpha_dropout)
_TORCH_DROPOUTS += (torch.dropout_, torch.feature_dropout_, torch.alpha_dropout_, torch.feature_alpha_dropout_)
_TRAIN_MODE_LAYERS = {
    F.batch_norm: _Layer("BatchNorm", ("training", 5, False), statistics=("running_mean", 1, None)),
    F.instance_norm: _Layer("InstanceNorm", ("use_input_stats", 5, True), statistics=("running_mean", 1, None)),
    **dict.fromkeys((F.rrelu, F.rrelu_), _RRELU),
    **dict.fromkeys((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d), _DROPOUT),
    **dict.fromkeys((F.alpha_dropout, F.feature_alpha_dropout), _ALPHA_DROPOUT),
    **dict.fromkeys(_TORCH_DROPOUTS, _TORCH_DROPOUT),
    F.scaled_dot_product_attention: _Layer("attention dropout", None, ("dropout_p", 4, 0.0)),
    F.multi_head_attention_forward: _Layer("attention dropout", ("training", 13, True), ("dropout_p", 10, None)),
}
#: Random sampling, refused with ``random_ops=True`` (a module in eval mode draws no random numbers).
_RANDOM_OPS = {
    torch.bernoulli, torch.Tensor.bernoulli, torch.Tensor.bernoulli_, torch.rand, torch.rand_like, torch.randn,
    torch.randn_like, torch.randint, torch.randint_like, torch.randperm, torch.multinomial, torch.Tensor.multinomial,
    torch.normal, torch.poisson, torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_,
    torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.cauchy_, torch.Tensor.log_normal_,
}  # fmt: skip


class TrainModeLayerError(ValueError):
    """A BatchNorm or dropout call in training mode where the Hessian must be the eval-mode one."""


class _ForbidTrainMode(TorchFunctionMode):
    def __init__(self, owner: str, random_ops: bool) -> None:
        super().__init__()
        self.owner = owner
        self.random_ops = random_ops

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        layer = _TRAIN_MODE_LAYERS.get(func)
        if layer is not None and layer.in_training(args, kwargs):
            harm = "move its running statistics" if layer.statistics else "make every product random"
            raise TrainModeLayerError(self._message(f"{layer.name} in training mode, which would {harm}"))
        if self.random_ops and func in _RANDOM_OPS:
            name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
            raise TrainModeLayerError(
                self._message(f"the random operation {name} (e.g. stochastic depth), which eval mode would not run")
            )
        return func(*args, **kwargs)

    def _message(self, what: str) -> str:
        return (
            f"{self.owner} estimates the top eigenvector in eval mode, but the closure ran {what}. "
            f"Pass model=<your module> when building {self.owner} (it then switches to eval mode for the "
            "refresh and restores the mode after), or call model.eval() before refresh_eigenvector()"
        )


def _argument(args: tuple, kwargs: dict, name: str, position: int, default: Any) -> Any:
    """A call's argument given by keyword or at ``position``, else ``default``."""
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else default


@contextmanager
def forbid_train_mode(owner: str, *, random_ops: bool = False) -> Iterator[None]:
    """Within the block (this thread only), the functional layers of ``_TRAIN_MODE_LAYERS`` called in training mode
    (BatchNorm and InstanceNorm with running statistics, RReLU, dropout with p > 0, attention's ``dropout_p``) raise
    a ``TrainModeLayerError`` (a ValueError) naming ``owner`` (the optimizer) and the fix; with ``random_ops``, so
    does any random sampling (``_RANDOM_OPS``). Only calls made from Python are seen: the dropout of ``nn.LSTM``,
    ``nn.GRU`` and ``nn.RNN`` runs inside one fused call and is not (pass ``model=`` to the optimizer instead)."""
    with _ForbidTrainMode(owner, random_ops):
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
