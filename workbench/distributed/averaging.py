"""Averages across the processes of a run, and a count of the all-reduces that make them.

Each process holds a shard of the data; a quantity of the whole data (a gradient, a Hessian-vector product) is
the average of the shards' values weighted by their sizes. ``RankAverage`` forms it with one all-reduce, so every
process receives the same bits (an all-reduce hands each process the one reduced result). ``RankAveragedOperator``
does it for every product of a ``SymmetricOperator``: the Hessian of the union of the shards, from each process's
Hessian of its own shard.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
import torch.distributed as dist

from workbench.curvature.linear import SymmetricOperator


class CollectiveCounter:
    """All-reduces of one process, by kind, with their payload bytes (the tensor's size; a ring all-reduce moves
    about twice that over each link).

    Kinds used by the engine: ``"gradients"`` (DistributedDataParallel's gradient buckets; ``gradient_syncs``
    counts the passes they belong to), ``"hvp"`` (Hessian-vector products averaged across ranks), ``"state"``
    (the step's loss with the model's floating-point buffers).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.gradient_syncs = 0

    def add(self, kind: str, tensor: torch.Tensor) -> None:
        """Count one all-reduce of ``tensor`` under ``kind``."""
        self.calls[kind] += 1
        self.bytes[kind] += tensor.numel() * tensor.element_size()

    def totals(self) -> dict[str, float]:
        """The counts so far: ``gradient_syncs`` (passes whose gradients DDP all-reduced), ``allreduces`` and
        ``allreduce_bytes`` (every kind), and ``hvp_allreduces``."""
        return {
            "gradient_syncs": float(self.gradient_syncs),
            "allreduces": float(sum(self.calls.values())),
            "allreduce_bytes": float(sum(self.bytes.values())),
            "hvp_allreduces": float(self.calls["hvp"]),
        }

    def since(self, earlier: dict[str, float]) -> dict[str, float]:
        """What was counted after ``earlier`` (a ``totals()`` taken then)."""
        return {name: value - earlier.get(name, 0.0) for name, value in self.totals().items()}


class RankAverage:
    """The weighted average of a tensor over the processes of ``group``: Σ_r (w_r / Σ w) · x_r, one all-reduce.

    Args:
        group: the process group (``torch.distributed.group.WORLD`` for all processes).
        weight: this process's weight (its shard's sample count), > 0; ``None``: equal weights (1 / world size,
            no collective to learn the total). With weights, their total is all-reduced once, here.
        counter: a ``CollectiveCounter`` to count the all-reduces in (optional).
        kind: the kind they are counted under.
    """

    def __init__(
        self, group: Any, weight: float | None = None, counter: CollectiveCounter | None = None, kind: str = "hvp"
    ) -> None:
        self.group = group
        self.world_size = dist.get_world_size(group)
        self.counter = counter
        self.kind = kind
        if weight is None:
            self.share = 1.0 / self.world_size
        else:
            if not weight > 0:
                raise ValueError(f"weight must be > 0 (this process's sample count), got {weight}")
            total = torch.tensor([float(weight)], dtype=torch.float64, device=_collective_device(group))
            dist.all_reduce(total, group=group)
            self.share = float(weight) / float(total)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        """The average of ``tensor`` (same shape on every process) over the group, as a new tensor."""
        averaged = tensor * self.share
        dist.all_reduce(averaged, group=self.group)
        if self.counter is not None:
            self.counter.add(self.kind, averaged)
        return averaged


class RankAveragedOperator:
    """``SymmetricOperator`` whose products are averaged across processes: each applies ``op``, its own shard's
    operator, and every product is ``average`` of theirs (the same on every process). ``num_hvps`` counts this
    process's products.

    A solver that decides from the products how many to take (``ritz_refresh`` with a tolerance) takes the same
    number on every process, and so runs the same all-reduces, because every process computes the same bits from
    the same averaged products. That holds on processes with the same hardware and software, the assumption that
    also keeps every replica's v, and so its step, the same; mixing GPU models or BLAS builds in one run breaks it.
    """

    def __init__(self, op: SymmetricOperator, average: RankAverage) -> None:
        self.op = op
        self.average = average
        self.num_params = op.num_params
        self.dtype = op.dtype
        self.device = op.device
        self.num_hvps = 0

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        """The averaged products of the rows of ``vectors`` ``(b, num_params)``, ``(b, num_params)``."""
        self.num_hvps += vectors.shape[0]
        return self.average(self.op.batched_matvec(vectors))


def _collective_device(group: Any) -> torch.device:
    """Where tensors for the group's collectives live: this process's CUDA device under NCCL, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
