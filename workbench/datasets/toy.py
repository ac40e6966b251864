"""Two-dimensional toy classification sets: moons, spirals with any number of arms, and Gaussian blobs.

Points and split are both drawn from ``seed``; inputs are standardised per coordinate on the training split.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench._checks import check_float, check_int
from workbench.datasets.splits import DatasetSplits, check_test_fraction, standardized_splits, stratified_split


def load_moons(*, seed: int, num_samples: int = 1000, noise: float = 0.1, test_fraction: float = 0.2) -> DatasetSplits:
    """Two interleaving half circles (scikit-learn's ``make_moons``), input shape ``(2,)``.

    Args:
        seed: seed of the points and of the split.
        num_samples: points in both splits together, half per moon; at least 4.
        noise: standard deviation of the Gaussian noise added to each coordinate (moon radius is 1).
        test_fraction: fraction of each class held out, in (0, 1).
    """
    from sklearn.datasets import make_moons

    num_samples = check_int("num_samples", num_samples, minimum=4)
    noise = check_float("noise", noise, minimum=0.0)
    points, labels = make_moons(n_samples=num_samples, noise=noise, random_state=seed)
    description = f"two moons, {num_samples} points, noise std {noise:g}"
    return _toy_splits("moons", points, labels, seed, test_fraction, ("upper moon", "lower moon"), description)


def load_spirals(
    *,
    seed: int,
    num_samples: int = 1000,
    num_classes: int = 2,
    turns: float = 1.0,
    noise: float = 0.05,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """Interleaved spiral arms, one class per arm, input shape ``(2,)``.

    Arm ``k`` is ``r·(cos φ, sin φ)`` with radius ``r ~ U(0, 1)`` and angle ``φ = 2π·(turns·r + k/num_classes)``,
    plus isotropic Gaussian noise. Samples are spread over arms as evenly as possible.

    Args:
        seed: seed of the points and of the split.
        num_samples: points in both splits together; at least 2 per arm.
        num_classes: number of arms (classes), at least 2.
        turns: full turns each arm makes from the centre to radius 1, at least 0.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        test_fraction: fraction of each class held out, in (0, 1).
    """
    num_classes = check_int("num_classes", num_classes, minimum=2)
    num_samples = check_int("num_samples", num_samples, minimum=2 * num_classes)
    turns = check_float("turns", turns, minimum=0.0)
    noise = check_float("noise", noise, minimum=0.0)
    rng = np.random.default_rng(seed)
    labels = np.arange(num_samples) % num_classes
    radius = rng.uniform(0.0, 1.0, num_samples)
    angle = 2 * math.pi * (turns * radius + labels / num_classes)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points += noise * rng.standard_normal(points.shape)
    names = tuple(f"arm {k}" for k in range(num_classes))
    description = f"{num_classes}-arm spirals, {num_samples} points, {turns:g} turns, noise std {noise:g}"
    return _toy_splits("spirals", points, labels, seed, test_fraction, names, description)


def load_blobs(
    *, seed: int, num_samples: int = 1000, num_classes: int = 3, noise: float = 1.0, test_fraction: float = 0.2
) -> DatasetSplits:
    """Isotropic Gaussian blobs (scikit-learn's ``make_blobs``), one class per blob, input shape ``(2,)``.

    Centres are drawn uniformly from the box [-10, 10]² (scikit-learn's default) with the same seed.

    Args:
        seed: seed of the centres, points and split.
        num_samples: points in both splits together, spread evenly over blobs; at least 2 per blob.
        num_classes: number of blobs (classes), at least 2.
        noise: standard deviation of each blob in each coordinate.
        test_fraction: fraction of each class held out, in (0, 1).
    """
    from sklearn.datasets import make_blobs

    num_classes = check_int("num_classes", num_classes, minimum=2)
    num_samples = check_int("num_samples", num_samples, minimum=2 * num_classes)
    noise = check_float("noise", noise, minimum=0.0)
    points, labels = make_blobs(n_samples=num_samples, centers=num_classes, cluster_std=noise, random_state=seed)
    names = tuple(f"blob {k}" for k in range(num_classes))
    description = f"{num_classes} Gaussian blobs, {num_samples} points, std {noise:g}"
    return _toy_splits("blobs", points, labels, seed, test_fraction, names, description)


def _toy_splits(
    name: str,
    points: np.ndarray,
    labels: np.ndarray,
    seed: int,
    test_fraction: float,
    class_names: tuple[str, ...],
    description: str,
) -> DatasetSplits:
    test_fraction = check_test_fraction(test_fraction)
    train_index, test_index = stratified_split(labels, test_fraction, seed)
    inputs = torch.from_numpy(np.asarray(points, dtype=np.float32))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return standardized_splits(
        name,
        (inputs[train_index], targets[train_index]),
        (inputs[test_index], targets[test_index]),
        class_names=class_names,
        description=f"{description}; {len(train_index)} train / {len(test_index)} test (stratified, seed {seed})",
    )
