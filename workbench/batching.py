"""Batches of any structure: a tensor, a tuple or list of them (``(inputs, targets)``), a dict of them (Hugging Face
style ``{"input_ids": ..., "labels": ...}``), nested. Every tensor in a batch has the samples along dim 0.

These helpers move a batch to a device, count its samples, take its first samples, split it into micro-batches and
join batches; non-tensor leaves (strings, numbers) travel along unchanged (lists of per-sample values are sliced
like tensors).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

Batch = Any  # a tensor, or a tuple / list / dict of batches


def map_tensors(batch: Batch, function: Callable[[torch.Tensor], Any]) -> Batch:
    """The same structure with ``function`` applied to every tensor leaf."""
    if isinstance(batch, torch.Tensor):
        return function(batch)
    if isinstance(batch, Mapping):
        return type(batch)({key: map_tensors(value, function) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
        return type(batch)(*(map_tensors(value, function) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(map_tensors(value, function) for value in batch)
    return batch


def move_to(batch: Batch, device: torch.device | str) -> Batch:
    """The batch with every tensor on ``device`` (non-blocking where the source is pinned)."""
    return map_tensors(batch, lambda tensor: tensor.to(device, non_blocking=True))


def tensors_of(batch: Batch) -> list[torch.Tensor]:
    """The tensor leaves of ``batch``, depth first."""
    found: list[torch.Tensor] = []
    map_tensors(batch, found.append)
    return found


def batch_size(batch: Batch) -> int:
    """Number of samples: the length along dim 0 of the batch's tensors.

    Raises:
        ValueError: naming the batch's structure when it holds no tensor, a 0-dim one, or tensors of different
            lengths.
    """
    sizes = {int(tensor.shape[0]) for tensor in tensors_of(batch) if tensor.dim() > 0}
    if any(tensor.dim() == 0 for tensor in tensors_of(batch)) or len(sizes) != 1:
        raise ValueError(
            "a batch must hold tensors with the samples along dim 0, all of the same length; got "
            f"{describe(batch)}"
        )
    return sizes.pop()


def take(batch: Batch, count: int) -> Batch:
    """The first ``count`` samples of ``batch``."""
    return _slice(batch, slice(0, count))


def split(batch: Batch, parts: int) -> list[Batch]:
    """``batch`` cut into ``parts`` consecutive micro-batches of sizes that differ by at most one (later ones
    larger); fewer when the batch has fewer than ``parts`` samples."""
    size = batch_size(batch)
    bounds = [size * index // parts for index in range(parts + 1)]
    return [_slice(batch, slice(start, stop)) for start, stop in itertools.pairwise(bounds) if stop > start]


def chunks(batch: Batch, size: int) -> list[Batch]:
    """``batch`` cut into consecutive pieces of ``size`` samples (the last one shorter)."""
    total = batch_size(batch)
    return [_slice(batch, slice(start, start + size)) for start in range(0, total, size)]


def concat(batches: Sequence[Batch]) -> Batch:
    """Join batches of the same structure along their samples."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(batches))
    if isinstance(first, Mapping):
        return type(first)({key: concat([batch[key] for batch in batches]) for key in first})
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(concat([batch[i] for batch in batches]) for i in range(len(first))))
    if isinstance(first, list | tuple) and _is_structure(first):
        return type(first)(concat([batch[i] for batch in batches]) for i in range(len(first)))
    if isinstance(first, list):  # per-sample values (e.g. strings)
        return [item for batch in batches for item in batch]
    return first


def describe(batch: Batch) -> str:
    """A short text of a batch's structure and shapes, for error messages."""
    if isinstance(batch, torch.Tensor):
        return f"Tensor{tuple(batch.shape)}"
    if isinstance(batch, Mapping):
        return "{" + ", ".join(f"{key!r}: {describe(value)}" for key, value in batch.items()) + "}"
    if isinstance(batch, list | tuple):
        inner = ", ".join(describe(value) for value in list(batch)[:4]) + (", ..." if len(batch) > 4 else "")
        return f"{type(batch).__name__}({inner})"
    return type(batch).__name__


def _slice(batch: Batch, index: slice) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch[index]
    if isinstance(batch, Mapping):
        return type(batch)({key: _slice(value, index) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_slice(value, index) for value in batch))
    if isinstance(batch, list | tuple) and _is_structure(batch):
        return type(batch)(_slice(value, index) for value in batch)
    if isinstance(batch, list):  # per-sample values (e.g. strings)
        return batch[index]
    return batch


def _is_structure(sequence: list | tuple) -> bool:
    """A tuple is always a structure of fields; a list is one when it holds batches rather than per-sample values."""
    return isinstance(sequence, tuple) or all(
        isinstance(item, torch.Tensor | Mapping | list | tuple) for item in sequence
    )
