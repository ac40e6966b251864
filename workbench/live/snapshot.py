"""What the spectrum and landscape explorers measure: a private copy of a trained model with its probe batch.

A source is a run directory (or its checkpoint file), a ``Trainer`` that is not running, anything with a
``snapshot()`` method (a ``LiveRun`` or the training dashboard, which copy the live model between two steps),
or a ``ModelSnapshot`` itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from workbench.datasets import DatasetSplits
from workbench.inputs import LossFn
from workbench.live.trajectory import Trajectory
from workbench.train import Trainer
from workbench.train.run_folder import RunFolder


@dataclass(frozen=True)
class ModelSnapshot:
    """A frozen moment of a run.

    Attributes:
        model: a copy of the network (never trained further), on the run's device.
        batch: the run's fixed probe batch (the one λ1 and the trace were logged on): ``(inputs, targets)`` or any
            batch structure its loss takes.
        label: a name for figure titles.
        step: the optimizer step the weights belong to.
        loss_fn: the run's training loss: an ``(outputs, targets)`` loss or a ``BatchLoss`` (the trainer's; mean
            cross-entropy by default), as the curvature engine and the landscapes take it.
        trajectory: the weights along the run so far, or None when they were not recorded.
    """

    model: torch.nn.Module
    batch: Any
    label: str
    step: int
    loss_fn: LossFn = F.cross_entropy
    trajectory: Trajectory | None = None

    def snapshot(self) -> ModelSnapshot:
        """Itself (a snapshot is a source too)."""
        return self


@runtime_checkable
class SnapshotSource(Protocol):
    """Anything that can hand out a ``ModelSnapshot`` of its current model."""

    def snapshot(self) -> ModelSnapshot: ...


Source = SnapshotSource | Trainer | str | Path


def snapshot_of_trainer(trainer: Trainer, *, label: str, trajectory: Trajectory | None = None) -> ModelSnapshot:
    """Copy ``trainer``'s model and probe batch; call it only while the trainer does not step."""
    model = copy.deepcopy(trainer.model)
    for param in model.parameters():
        param.grad = None
    return ModelSnapshot(model, trainer.inputs.probe_batch, label, trainer.step, trainer.loss_fn, trajectory)


def open_checkpoint(
    path: str | Path, *, data: DatasetSplits | None = None, **own: Any
) -> tuple[Trainer, Trajectory | None]:
    """A Trainer restored from a saved run, ready to continue, and the run's trajectory if it was saved.

    Args:
        path: a run directory holding checkpoint.pt (and maybe trajectory.pt), or a checkpoint file.
        data: the run's dataset when it is already in memory (saves reloading it).
        own: a run of your own model and data needs them again (``model=``, ``train_data=``, ... as for
            ``Trainer``).

    Raises:
        ValueError: when ``path`` is neither.
    """
    folder, checkpoint = RunFolder.of_checkpoint(path)
    trainer = Trainer.from_checkpoint(checkpoint, data=data, **own)
    return trainer, Trajectory.load(folder.trajectory) if folder.trajectory.is_file() else None


def load_snapshot(path: str | Path, *, data: DatasetSplits | None = None) -> ModelSnapshot:
    """The model of a saved run (see ``open_checkpoint``), labelled by its directory's name."""
    trainer, trajectory = open_checkpoint(path, data=data)
    label = (Path(path) if Path(path).is_dir() else Path(path).parent).name
    return snapshot_of_trainer(trainer, label=label, trajectory=trajectory)


def snapshot_of(source: Source) -> ModelSnapshot:
    """Resolve any source (see the module docstring) into a ``ModelSnapshot``.

    Raises:
        ValueError: for a running ``Trainer`` (use a ``LiveRun``, which copies between steps), a path that is not
            a saved run, or an object of another type.
    """
    if isinstance(source, SnapshotSource):
        return source.snapshot()
    if isinstance(source, Trainer):
        if source.status in ("running", "paused"):
            raise ValueError(
                f"the Trainer is {source.status} on another thread; wrap it in a LiveRun (whose snapshot() copies "
                "the model between two steps) or wait until it ends"
            )
        return snapshot_of_trainer(source, label=f"{source.config.optimizer} step {source.step}")
    if isinstance(source, str | Path):
        return load_snapshot(source)
    raise ValueError(
        "source must be a run directory or checkpoint path, a Trainer, a LiveRun, a training dashboard or a "
        f"ModelSnapshot; got {type(source).__name__}"
    )
