"""The result type of every loader, the seeded stratified split, and standardisation on training statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from workbench._checks import check_float

BatchAugment = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset ready for training: standardised float32 inputs and int64 class targets.

    Attributes:
        name: registry name, e.g. ``"moons"``.
        train: ``TensorDataset(inputs, targets)``; inputs ``(N, *input_shape)`` float32, targets ``(N,)`` int64.
        test: the same for the held-out split.
        num_classes: number of classes; targets lie in ``[0, num_classes)``.
        input_shape: per-sample shape: ``(D,)`` for feature vectors, ``(C, L)`` for sequences,
            ``(C, H, W)`` for images.
        class_names: one readable name per class, indexed by target.
        description: one line saying what the data is and how it was split.
        mean: per-channel mean of the raw training inputs that was subtracted: one value per coordinate for the
            2-D toys, one per image channel for digits (also when flattened to ``(64,)``) and CIFAR (pixels
            scaled to [0, 1] first), one for MNIST-1D. Undo with ``x * std + mean`` per channel.
        std: per-channel standard deviation of the raw training inputs that was divided by (a constant channel
            keeps 1).
        augment: for image sets loaded with ``augment=True``, a function ``(batch, generator) -> batch`` that
            applies the standard training augmentation to a standardised ``(B, C, H, W)`` batch on its own
            device; ``None`` otherwise. Apply it to training batches only.
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    description: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: BatchAugment | None = None


def check_test_fraction(test_fraction: float) -> float:
    """Return ``test_fraction`` after checking it lies in the open interval (0, 1)."""
    return check_float(
        "test_fraction", test_fraction, minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False
    )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into shuffled train and test index arrays with the class proportions kept.

    Each class with ``n_c`` samples sends ``round(test_fraction * n_c)`` of them (at least 1, at most ``n_c - 1``)
    to the test split. Both index arrays come in one seeded random order, so classes are interleaved.

    Args:
        labels: ``(N,)`` integer class labels.
        test_fraction: fraction of each class held out, in (0, 1).
        seed: seed of the numpy Generator that draws the permutation.

    Raises:
        ValueError: naming ``test_fraction`` when some class has fewer than 2 samples to split.
    """
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = order[labels[order] == label]
        if len(members) < 2:
            raise ValueError(
                f"test_fraction cannot split class {label} with {len(members)} sample(s); every class needs at least 2"
            )
        count = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        is_test[members[:count]] = True
    return order[~is_test[order]], order[is_test[order]]


def standardized_splits(
    name: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    class_names: tuple[str, ...],
    description: str,
    flatten: bool = False,
    augment: Callable[[tuple[float, ...], tuple[float, ...]], BatchAugment] | None = None,
) -> DatasetSplits:
    """Standardise both splits per channel with the training split's mean and std, and wrap them.

    Args:
        name: registry name stored in the result.
        train: ``(inputs, targets)``: ``(N, C, ...)`` float32 raw inputs (for ``(N, D)`` vectors each feature is a
            channel), modified in place, and ``(N,)`` integer labels.
        test: the same for the held-out split, standardised with the training statistics.
        class_names: one name per class.
        description: stored in the result.
        flatten: reshape each standardised sample to a vector (statistics are still per channel).
        augment: factory that turns the per-channel ``(mean, std)`` into the batch augmentation stored in the result.
    """
    (train_inputs, train_targets), (test_inputs, test_targets) = train, test
    var, mean = torch.var_mean(train_inputs, dim=[0, *range(2, train_inputs.dim())], correction=0)
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is only centred
    view = (1, -1) + (1,) * (train_inputs.dim() - 2)
    for inputs in (train_inputs, test_inputs):
        inputs.sub_(mean.view(view)).div_(std.view(view))
    if flatten:
        train_inputs, test_inputs = train_inputs.flatten(1), test_inputs.flatten(1)
    mean_values, std_values = tuple(mean.tolist()), tuple(std.tolist())
    return DatasetSplits(
        name=name,
        train=TensorDataset(train_inputs, torch.as_tensor(train_targets, dtype=torch.int64)),
        test=TensorDataset(test_inputs, torch.as_tensor(test_targets, dtype=torch.int64)),
        num_classes=len(class_names),
        input_shape=tuple(train_inputs.shape[1:]),
        class_names=class_names,
        description=description,
        mean=mean_values,
        std=std_values,
        augment=None if augment is None else augment(mean_values, std_values),
    )
