"""What a run trains, evaluates and probes on: a named dataset held on the device, or a user's own loaders.

``training_data`` turns either into one ``TrainingData``: a source of each step's batch, the batches of the test
split (when there is one), a fixed sample of training data to evaluate the training loss on, and the fixed probe
batch the curvature probes measure. The named datasets keep their fast path (all tensors on the device, batches
by index); a user's DataLoader is streamed, nothing of it is held on the device but the two fixed samples, drawn
once from the training data (or the probe batch given).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from workbench.batching import batch_size, concat, describe, move_to, take
from workbench.datasets import DatasetSplits, load_dataset
from workbench.inputs import is_batch
from workbench.train.batches import EpochBatches, LoaderBatches
from workbench.train.config import TrainConfig

#: The training split's loss and accuracy are measured on (at most) this many fixed training samples.
EVAL_TRAIN_SAMPLES = 4096
#: Samples per batch when the test split of a named dataset is evaluated.
EVAL_BATCH = 1024


@dataclass
class TrainingData:
    """Everything a run reads its data from.

    Attributes:
        batches: ``batch(step)`` gives step ``step``'s training batch; ``steps_per_epoch``.
        test_batches: a function returning the test split's batches (on the device), or None without one.
        eval_train: a fixed sample of training data (one batch, on the device) to evaluate the training loss on.
        probe_batch: the fixed probe batch (on the device) the curvature probes and snapshots measure.
        splits: the named dataset (``DatasetSplits``), or None for a user's own data.
    """

    batches: EpochBatches | LoaderBatches
    test_batches: Callable[[], Iterator[Any]] | None
    eval_train: Any
    probe_batch: Any
    splits: DatasetSplits | None


def training_data(
    config: TrainConfig,
    device: torch.device,
    *,
    splits: DatasetSplits | None = None,
    train_data: Iterable[Any] | None = None,
    test_data: Iterable[Any] | None = None,
    probe_data: Any = None,
) -> TrainingData:
    """The run's data: ``train_data`` (and ``test_data``) when given, else the named ``config.dataset`` (``splits``
    when it is already loaded).

    Raises:
        ValueError: naming ``train_data``, ``test_data`` or ``probe_data`` when they cannot be used (see
            ``LoaderBatches``), or ``dataset`` when neither a dataset name nor train_data is given.
    """
    if train_data is None:
        if config.dataset is None:
            raise ValueError("dataset is None: pass train_data= (your own data) or name a dataset")
        if splits is None:
            splits = load_dataset(config.dataset, seed=config.seed, **config.dataset_options)
        return _named(config, device, splits, probe_data)
    return _streamed(config, device, train_data, test_data, probe_data)


def _named(config: TrainConfig, device: torch.device, splits: DatasetSplits, probe_data: Any) -> TrainingData:
    inputs, targets = (tensor.to(device) for tensor in splits.train.tensors)
    test_inputs, test_targets = (tensor.to(device) for tensor in splits.test.tensors)
    batches = EpochBatches(inputs, targets, config.batch_size, config.seed, splits.augment)
    fixed = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(config.seed)).to(device)
    eval_train = (inputs[fixed[:EVAL_TRAIN_SAMPLES]], targets[fixed[:EVAL_TRAIN_SAMPLES]])
    probe = (inputs[fixed[: config.probe_batch_size]], targets[fixed[: config.probe_batch_size]])

    def test_batches() -> Iterator[Any]:
        for start in range(0, test_inputs.shape[0], EVAL_BATCH):
            yield test_inputs[start : start + EVAL_BATCH], test_targets[start : start + EVAL_BATCH]

    probe = probe if probe_data is None else _given_probe(probe_data, device)
    return TrainingData(batches, test_batches, eval_train, probe, splits)


def _streamed(
    config: TrainConfig,
    device: torch.device,
    train_data: Iterable[Any],
    test_data: Iterable[Any] | None,
    probe_data: Any,
) -> TrainingData:
    batches = LoaderBatches(train_data, config.seed)
    wanted = max(EVAL_TRAIN_SAMPLES, config.probe_batch_size)
    sample = _first_samples(train_data, wanted, config.seed, "train_data")
    eval_train = move_to(take(sample, EVAL_TRAIN_SAMPLES), device)
    if probe_data is not None:
        probe = _given_probe(probe_data, device)
    else:
        available = batch_size(sample)
        if available < config.probe_batch_size:
            raise ValueError(
                f"probe_batch_size {config.probe_batch_size} is larger than the training data ({available} samples): "
                "lower probe_batch_size or pass probe_data="
            )
        probe = move_to(take(sample, config.probe_batch_size), device)
    test_batches = None
    if test_data is not None:
        if iter(test_data) is test_data:
            raise ValueError("test_data is an iterator, which can be read only once: pass a DataLoader or a list")

        def test_batches() -> Iterator[Any]:
            for batch in test_data:
                yield move_to(batch, device)

    return TrainingData(batches, test_batches, eval_train, probe, None)


def _first_samples(data: Iterable[Any], count: int, seed: int, name: str) -> Any:
    """The first ``count`` samples of one seeded pass over ``data`` (fewer when it has fewer), as one batch; the
    global random state is left as it was."""
    collected, total = [], 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, batch in enumerate(data):
            if not is_batch(batch) and not isinstance(batch, torch.Tensor):
                raise ValueError(
                    f"{name} batch {index} must be a tuple, list or dict of tensors, got {describe(batch)}"
                )
            collected.append(batch)
            total += batch_size(batch)
            if total >= count:
                break
    if not collected:
        raise ValueError(f"{name} is empty: it yields no batches")
    return take(concat(collected), count)


def _given_probe(probe_data: Any, device: torch.device) -> Any:
    if not is_batch(probe_data):
        raise ValueError(f"probe_data must be one batch (a tuple, list or dict of tensors), got {describe(probe_data)}")
    return move_to(probe_data, device)
