"""Deterministic mini-batches: from in-memory tensors on the device (the embedded datasets' fast path) or streamed
from a user's DataLoader; in both the order depends only on (seed, epoch), so resuming needs no sampler state."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch

from workbench.datasets.splits import BatchAugment


class EpochBatches:
    """Shuffled mini-batches of ``batch_size`` samples (the last partial batch dropped, so every step sees
    the same batch size, as SAM's per-batch perturbation assumes).

    The permutation of epoch e is drawn from a generator seeded with (seed, e), so any step's batch can be
    recomputed from the step number alone: resuming needs no sampler state. ``augment`` (an image set's training
    augmentation, ``DatasetSplits.augment``) is applied to each step's inputs.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        seed: int,
        augment: BatchAugment | None = None,
    ) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_size = min(batch_size, inputs.shape[0])
        self.seed = seed
        self.augment = augment
        self.steps_per_epoch = inputs.shape[0] // self.batch_size
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(inputs, targets)`` of optimizer step ``step``, shapes ``(B, ...)`` and ``(B,)``; the training
        augmentation (when given) is applied with a generator seeded by (seed, step)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order = torch.randperm(self.inputs.shape[0], generator=generator).to(self.inputs.device)
            self._epoch = epoch
        index = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        inputs = self.inputs[index]
        if self.augment is not None:
            inputs = self.augment(inputs, torch.Generator().manual_seed(self.seed * 100_003 + step))
        return inputs, self.targets[index]


_EXHAUSTED = object()


class LoaderBatches:
    """Mini-batches from a user's DataLoader (or any sized, re-iterable collection of batches), streamed.

    Nothing is held on the device: each batch is moved there when its step comes. The order is reproducible from
    the step alone: before each epoch's pass the loader's shuffling is seeded from (seed, epoch) (torch's global
    generator, or the loader's own ``generator`` when it has one, the source a ``RandomSampler`` and the workers'
    seeds draw from), so a run resumed at step t restarts that epoch's pass and skips to batch t (loading, not
    training on, the batches before it).

    Raises:
        ValueError: naming ``train_data`` when it is an iterator (it can be read only once), has no length, or
            is empty.
    """

    def __init__(self, loader: Iterable[Any], seed: int) -> None:
        if iter(loader) is loader:
            raise ValueError(
                "train_data is an iterator, which can be read only once: pass a DataLoader or a list of batches"
            )
        if not isinstance(loader, Sized):
            raise ValueError(
                f"train_data must have a length (a DataLoader over a map-style dataset, or a list of batches); got "
                f"{type(loader).__name__}"
            )
        if len(loader) == 0:
            raise ValueError("train_data is empty: it yields no batches")
        self.loader = loader
        self.seed = seed
        self.steps_per_epoch = len(loader)
        self._iterator: Iterator[Any] | None = None
        self._next_step = -1

    def batch(self, step: int) -> Any:
        """The batch of optimizer step ``step``, as the loader yields it (on its own device)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if step != self._next_step or self._iterator is None:
            self._iterator = self._epoch_iterator(epoch)
            for _ in range(position):
                next(self._iterator)
        elif position == 0:
            self._iterator = self._epoch_iterator(epoch)
        self._next_step = step + 1
        try:
            return next(self._iterator)
        except StopIteration:
            raise ValueError(
                f"train_data yielded fewer batches than its length ({self.steps_per_epoch}) in epoch {epoch}"
            ) from None

    def _epoch_iterator(self, epoch: int) -> Iterator[Any]:
        """The epoch's pass, its shuffling drawn from (seed, epoch). The first batch is fetched here, inside the
        seeded context: a sampler draws its seed lazily, at the first ``next``, not at ``iter``."""
        seed = self.seed * 100_003 + epoch
        generator = getattr(self.loader, "generator", None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if generator is not None:
                generator.manual_seed(seed)
            iterator = iter(self.loader)
            first = next(iterator, _EXHAUSTED)
        return iterator if first is _EXHAUSTED else itertools.chain([first], iterator)
