"""Deterministic mini-batches from in-memory tensors: the order depends only on (seed, epoch)."""

from __future__ import annotations

import torch


class EpochBatches:
    """Shuffled mini-batches of ``batch_size`` samples (the last partial batch dropped, so every step sees
    the same batch size, as SAM's per-batch perturbation assumes).

    The permutation of epoch e is drawn from a generator seeded with (seed, e), so any step's batch can be
    recomputed from the step number alone: resuming needs no sampler state.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_size = min(batch_size, inputs.shape[0])
        self.seed = seed
        self.steps_per_epoch = inputs.shape[0] // self.batch_size
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(inputs, targets)`` of optimizer step ``step``, shapes ``(B, ...)`` and ``(B,)``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order = torch.randperm(self.inputs.shape[0], generator=generator).to(self.inputs.device)
            self._epoch = epoch
        index = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        return self.inputs[index], self.targets[index]
