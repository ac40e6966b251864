"""What the curvature engine and the probes accept as model, loss and data, checked in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Batch:
    """One ``(inputs, targets)`` batch and its share of all samples."""

    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float  # this batch's share of all samples; the weights sum to 1


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


def as_batches(data: object) -> list[Batch]:
    if is_batch(data):
        pairs = [data]
    else:
        try:
            pairs = list(data)  # type: ignore[call-overload]
        except TypeError as error:
            raise ValueError("data must be an (inputs, targets) batch or an iterable of such batches") from error
    if not pairs:
        raise ValueError("data is empty: the loader yielded no batches")
    for index, pair in enumerate(pairs):
        if not is_batch(pair):
            raise ValueError(
                f"data batch {index} must be an (inputs, targets) pair of tensors, got {type(pair).__name__}"
            )
        if pair[1].shape[0] == 0:
            raise ValueError(f"data batch {index} is empty (0 samples)")
    sizes = [int(pair[1].shape[0]) for pair in pairs]
    total = float(sum(sizes))
    return [Batch(pair[0], pair[1], size / total) for pair, size in zip(pairs, sizes, strict=True)]


def is_batch(candidate: object) -> bool:
    return (
        isinstance(candidate, tuple | list)
        and len(candidate) == 2
        and all(isinstance(item, torch.Tensor) for item in candidate)
        and candidate[1].dim() >= 1
    )


def batch_on_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return batch.inputs.to(device, non_blocking=True), batch.targets.to(device, non_blocking=True)


def check_scalar_loss(loss: object) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (a mean-reduced loss), got {shape}")
