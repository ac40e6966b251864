"""Toy 2-D sets, UCI digits and the shared split/standardisation: shapes, exact geometry, determinism, errors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from workbench.datasets import DATASETS, DatasetSplits, dataset_options, load_dataset
from workbench.datasets.splits import stratified_split

SMALL = {
    "moons": {"num_samples": 120},
    "spirals": {"num_samples": 150, "num_classes": 3},
    "blobs": {"num_samples": 120, "num_classes": 4},
    "digits": {},
}


def raw_inputs(splits: DatasetSplits, part: str) -> torch.Tensor:
    """Undo the standardisation of one split with the stored per-channel mean and std (float64)."""
    inputs = getattr(splits, part).tensors[0].double()
    view = (1, -1) + (1,) * (inputs.dim() - 2)
    mean, std = torch.tensor(splits.mean, dtype=torch.float64), torch.tensor(splits.std, dtype=torch.float64)
    return inputs * std.view(view) + mean.view(view)


def test_registry_lists_every_dataset() -> None:
    assert DATASETS == ("moons", "spirals", "blobs", "digits", "mnist1d", "cifar10", "cifar100", "pysource")
    assert dataset_options("moons") == {"num_samples": 1000, "noise": 0.1, "test_fraction": 0.2}
    assert dataset_options("cifar100") == {"subset": None, "augment": False, "labels": "fine"}


@pytest.mark.parametrize("name", list(SMALL))
def test_splits_are_typed_shaped_and_standardised_on_train(name: str) -> None:
    splits = load_dataset(name, seed=3, **SMALL[name])
    train_x, train_y = splits.train.tensors
    test_x, test_y = splits.test.tensors
    assert train_x.dtype == test_x.dtype == torch.float32
    assert train_y.dtype == test_y.dtype == torch.int64
    assert tuple(train_x.shape[1:]) == tuple(test_x.shape[1:]) == splits.input_shape
    assert len(splits.class_names) == splits.num_classes
    assert set(train_y.tolist()) == set(test_y.tolist()) == set(range(splits.num_classes))
    reduce = [0, *range(2, train_x.dim())]
    torch.testing.assert_close(train_x.double().mean(reduce), torch.zeros(train_x.shape[1], dtype=torch.float64))
    torch.testing.assert_close(
        train_x.double().std(reduce, correction=0), torch.ones(train_x.shape[1], dtype=torch.float64)
    )


@pytest.mark.parametrize("name", list(SMALL))
def test_same_seed_same_tensors_other_seed_other_split(name: str) -> None:
    first, again, other = (load_dataset(name, seed=s, **SMALL[name]) for s in (5, 5, 6))
    for a, b in zip(first.train.tensors + first.test.tensors, again.train.tensors + again.test.tensors, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.test.tensors[0], other.test.tensors[0])


@pytest.mark.parametrize("name", ["moons", "spirals", "blobs"])
def test_toy_splits_are_disjoint_stratified_and_complete(name: str) -> None:
    splits = load_dataset(name, seed=1, test_fraction=0.25, **SMALL[name])
    train = {tuple(row) for row in raw_inputs(splits, "train").tolist()}
    test = {tuple(row) for row in raw_inputs(splits, "test").tolist()}
    assert not train & test
    assert len(train) + len(test) == SMALL[name]["num_samples"]
    per_class = Counter(splits.train.tensors[1].tolist()) + Counter(splits.test.tensors[1].tolist())
    test_counts = Counter(splits.test.tensors[1].tolist())
    assert all(test_counts[c] == round(0.25 * per_class[c]) for c in per_class)


def test_moons_lie_on_their_circles_without_noise() -> None:
    splits = load_dataset("moons", seed=0, num_samples=60, noise=0.0)
    points, labels = raw_inputs(splits, "train"), splits.train.tensors[1]
    upper, lower = points[labels == 0], points[labels == 1]  # class 0: unit circle, upper half
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper), dtype=torch.float64), atol=1e-5, rtol=0)
    assert (upper[:, 1] >= -1e-5).all()
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)  # class 1: unit circle about (1, 0.5), lower half
    torch.testing.assert_close(
        (lower - centre).norm(dim=1), torch.ones(len(lower), dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert (lower[:, 1] <= 0.5 + 1e-5).all()


def test_spiral_arms_follow_the_formula_without_noise() -> None:
    arms, turns = 3, 1.5
    splits = load_dataset("spirals", seed=2, num_samples=90, num_classes=arms, turns=turns, noise=0.0)
    points, labels = raw_inputs(splits, "train"), splits.train.tensors[1].double()
    radius = points.norm(dim=1)
    expected = 2 * math.pi * (turns * radius + labels / arms)
    difference = torch.remainder(torch.atan2(points[:, 1], points[:, 0]) - expected + math.pi, 2 * math.pi) - math.pi
    assert difference.abs().max() < 1e-4
    assert radius.max() <= 1.0 + 1e-6


def test_digits_partition_the_sklearn_images_with_train_statistics() -> None:
    splits = load_dataset("digits", seed=4, image=True)
    images = load_digits().images  # (1797, 8, 8), ink counts 0..16
    assert splits.input_shape == (1, 8, 8)
    train_ink = torch.round(raw_inputs(splits, "train") * 16).numpy()
    test_ink = torch.round(raw_inputs(splits, "test") * 16).numpy()
    assert np.abs(raw_inputs(splits, "train").numpy() * 16 - train_ink).max() < 1e-4
    rows = Counter(map(bytes, np.concatenate([train_ink, test_ink]).reshape(-1, 64).astype(np.uint8)))
    assert rows == Counter(map(bytes, images.reshape(-1, 64).astype(np.uint8)))
    train_pixels = train_ink / 16
    assert splits.mean[0] == pytest.approx(train_pixels.mean(), rel=1e-5)
    assert splits.std[0] == pytest.approx(train_pixels.std(), rel=1e-5)


def test_digits_flat_holds_the_image_values() -> None:
    image, flat = load_dataset("digits", seed=0), load_dataset("digits", seed=0, image=False)
    assert flat.input_shape == (64,)
    assert torch.equal(flat.train.tensors[0], image.train.tensors[0].flatten(1))
    assert flat.mean == image.mean


def test_stratified_split_counts_by_hand() -> None:
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2)
    train, test = stratified_split(labels, 0.2, seed=0)
    assert Counter(labels[test].tolist()) == {0: 2, 1: 1, 2: 1}  # round(2.0), round(1.0), clamped up to 1
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    with pytest.raises(ValueError, match=r"test_fraction.*class 1 with 1 sample"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: load_dataset("imagenet"), "dataset must be one of 'moons'.*'cifar100'"),
        (lambda: load_dataset("moons", noize=0.1), "unknown option.*'noize'.*allowed options: 'num_samples', 'noise'"),
        (lambda: load_dataset("moons", num_samples=3), "num_samples must be an integer >= 4"),
        (lambda: load_dataset("moons", noise=-0.1), r"noise must be in \[0, inf\)"),
        (lambda: load_dataset("spirals", num_classes=1), "num_classes must be an integer >= 2"),
        (lambda: load_dataset("blobs", num_samples=5, num_classes=3), "num_samples must be an integer >= 6"),
        (lambda: load_dataset("blobs", test_fraction=1.0), r"test_fraction must be in \(0, 1\)"),
        (lambda: load_dataset("digits", image="yes"), "image must be True or False"),
        (lambda: load_dataset("moons", seed=-1), r"seed must be an integer in \[0, 4294967295\]"),
        (lambda: load_dataset("moons", download="no"), "download must be True or False"),
        (lambda: load_dataset("moons", root=5), "root must be a directory path"),
    ],
)
def test_bad_input_names_the_option(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
