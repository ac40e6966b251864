"""What the curvature engine and the probes accept as model, loss and data, checked in one place.

Data is one batch or an iterable of batches (a DataLoader, a list). A batch is an ``(inputs, targets)`` pair of
tensors, or any structure of tensors (a dict, a longer tuple; see ``workbench.batching``) for a ``(model, batch)``
loss (``workbench.losses``). A Mapping or a tuple/list of tensors is one batch; anything else is iterated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workbench.batching import batch_size, describe, move_to
from workbench.losses import LossFn

Data = Any  # one batch, or an iterable of batches

__all__ = ["Batch", "Data", "LossFn", "as_batches", "check_scalar_loss", "is_batch", "param_names", "select_params"]


@dataclass(frozen=True)
class Batch:
    """One batch of the data and its share of all samples."""

    data: Any  # the batch as the data yielded it
    size: int  # number of samples
    weight: float  # this batch's share of all samples; the weights sum to 1

    def on(self, device: torch.device) -> Any:
        """The batch's tensors on ``device``."""
        return move_to(self.data, device)


def select_params(model: torch.nn.Module, params: Iterable[torch.nn.Parameter] | None) -> list[torch.nn.Parameter]:
    chosen = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not chosen:
        raise ValueError("params is empty: the model has no parameters that require grad")
    dtypes = {p.dtype for p in chosen}
    if len(dtypes) > 1:
        raise ValueError(f"params must share one dtype, got {sorted(map(str, dtypes))}")
    if not chosen[0].is_floating_point():
        raise ValueError(f"params must be floating point, got {chosen[0].dtype}")
    return chosen


def param_names(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    missing = [i for i, p in enumerate(params) if id(p) not in by_id]
    if missing:
        raise ValueError(
            f"params must belong to the model (they are set by name for functional evaluation); params{missing} do not"
        )
    return [by_id[id(p)] for p in params]


def as_batches(data: Data) -> list[Batch]:
    """The data's batches (an iterable is read once), each with its size and share of all samples.

    Raises:
        ValueError: naming ``data`` when it is neither a batch nor an iterable of batches, is empty, or holds a
            batch without samples.
    """
    if is_batch(data):
        items = [data]
    else:
        try:
            items = list(data)
        except TypeError as error:
            raise ValueError(
                f"data must be a batch (an (inputs, targets) pair, a dict of tensors) or an iterable of batches, "
                f"got {describe(data)}"
            ) from error
    if not items:
        raise ValueError("data is empty: the loader yielded no batches")
    sizes = []
    for index, item in enumerate(items):
        if not is_batch(item):
            raise ValueError(f"data batch {index} must be a tuple, list or dict of tensors, got {describe(item)}")
        try:
            sizes.append(batch_size(item))
        except ValueError as error:
            raise ValueError(f"data batch {index}: {error}") from None
        if sizes[-1] == 0:
            raise ValueError(f"data batch {index} is empty (0 samples)")
    total = float(sum(sizes))
    return [Batch(item, size, size / total) for item, size in zip(items, sizes, strict=True)]


def is_batch(candidate: object) -> bool:
    """Whether ``candidate`` is one batch: a Mapping, or a tuple/list whose items are all tensors (of ≥ 1 dim)."""
    if isinstance(candidate, Mapping):
        return True
    return (
        isinstance(candidate, tuple | list)
        and len(candidate) > 0
        and all(isinstance(item, torch.Tensor) and item.dim() >= 1 for item in candidate)
    )


def check_scalar_loss(loss: object) -> None:
    """Raise unless ``loss`` is a one-element tensor.

    Raises:
        ValueError: naming ``loss_fn`` for a non-scalar result.
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (a mean-reduced loss), got {shape}")
