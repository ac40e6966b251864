"""Each process's share of the data: every step's batch cut into equal shards, one per rank.

The batch a step trains on is the run's batch, the same whatever the number of processes (``batch_size`` is the
global batch; a user's DataLoader yields global batches): every process draws it as a single process would (the
same seeded order, the same augmentation) and keeps its own consecutive ``1/world_size`` of it. So a run on N
processes with ``perturbation_sync="global"`` computes what one process computes on the whole batch, and with
``"local"`` what one process computes with ``m = N`` (up to floating-point rounding). Each process reads the whole
batch and keeps its part; the forward and backward passes, the costly part, are divided.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from workbench.batching import batch_size, split
from workbench.distributed.context import DistributedContext
from workbench.train.batches import EpochBatches, LoaderBatches
from workbench.train.data import TrainingData


def shard(batch: Any, rank: int, world_size: int, *, what: str = "batch") -> Any:
    """Rank ``rank``'s consecutive ``1/world_size`` of ``batch`` (any batch structure).

    Raises:
        ValueError: naming ``what`` when its sample count is not divisible by ``world_size``.
    """
    size = batch_size(batch)
    if size % world_size:
        raise ValueError(
            f"{what} has {size} samples, which the {world_size} processes cannot share equally: use a batch_size "
            f"divisible by {world_size} (a DataLoader: drop_last=True and such a batch size)"
        )
    return split(batch, world_size)[rank]


class ShardedBatches:
    """A run's batches as one process sees them: ``batch(step)`` is its shard of the step's (global) batch."""

    def __init__(self, batches: EpochBatches | LoaderBatches, rank: int, world_size: int) -> None:
        self.batches = batches
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = batches.steps_per_epoch

    def batch(self, step: int) -> Any:
        """This process's shard of step ``step``'s batch."""
        return shard(self.batches.batch(step), self.rank, self.world_size, what=f"the batch of step {step}")


def shard_training_data(data: TrainingData, context: DistributedContext) -> TrainingData:
    """``data`` with the training batches and the probe batch sharded for ``context``'s rank (the probe batch in
    near-equal parts: the probes weight each rank's products by its share). The evaluation data stay whole: rank 0
    evaluates.

    Raises:
        ValueError: when the probe batch has fewer samples than there are processes.
    """
    probe_size = batch_size(data.probe_batch)
    if probe_size < context.world_size:
        raise ValueError(
            f"the probe batch has {probe_size} samples, fewer than the {context.world_size} processes: raise "
            "probe_batch_size"
        )
    return dataclasses.replace(
        data,
        batches=ShardedBatches(data.batches, context.rank, context.world_size),
        probe_batch=split(data.probe_batch, context.world_size)[context.rank],
    )
