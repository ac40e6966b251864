"""MNIST-1D: the package's own procedure, cached atomically, global RNGs untouched, split by seed."""

from __future__ import annotations

import random
from collections import Counter

import mnist1d.data
import numpy as np
import pytest
import torch

from workbench.datasets import load_dataset
from workbench.datasets import mnist1d as mnist1d_module

SAMPLES = 200


def test_samples_are_mnist1d_make_dataset(tmp_path) -> None:
    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed = SAMPLES, 7
    reference = mnist1d.data.make_dataset(args)
    inputs, targets = mnist1d_module.cached_samples(tmp_path, SAMPLES, 7)
    np.testing.assert_array_equal(inputs, np.concatenate([reference["x"], reference["x_test"]]).astype(np.float32))
    np.testing.assert_array_equal(targets, np.concatenate([reference["y"], reference["y_test"]]))


def test_loaded_splits_are_shaped_balanced_and_standardised_on_train(tmp_path) -> None:
    splits = load_dataset("mnist1d", root=tmp_path, seed=0, num_samples=SAMPLES)
    train_x, train_y = splits.train.tensors
    assert splits.input_shape == (1, 40) and splits.num_classes == 10
    assert train_x.shape == (160, 1, 40) and splits.test.tensors[0].shape == (40, 1, 40)
    assert Counter(train_y.tolist()) == dict.fromkeys(range(10), 16)
    assert abs(train_x.double().mean().item()) < 1e-6
    assert train_x.double().std(correction=0).item() == pytest.approx(1.0, abs=1e-5)
    pooled, _ = mnist1d_module.cached_samples(tmp_path, SAMPLES, 42)
    train_pixels = torch.from_numpy(pooled)[_rows_of(splits, pooled)]
    assert splits.mean[0] == pytest.approx(train_pixels.double().mean().item(), rel=1e-5, abs=1e-6)
    assert splits.std[0] == pytest.approx(train_pixels.double().std(correction=0).item(), rel=1e-5)


def test_cache_is_written_once_and_read_back(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("mnist1d", root=tmp_path, seed=1, num_samples=SAMPLES)
    files = list((tmp_path / "mnist1d").iterdir())
    assert [f.name for f in files] == [f"mnist1d_n{SAMPLES}_seed42_v{mnist1d_module._mnist1d_version()}.npz"]

    def no_generation(*args: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(mnist1d_module, "generate_samples", no_generation)
    again = load_dataset("mnist1d", root=tmp_path, seed=1, num_samples=SAMPLES)
    assert torch.equal(first.train.tensors[0], again.train.tensors[0])
    assert torch.equal(first.test.tensors[1], again.test.tensors[1])


def test_split_seed_changes_the_split_not_the_data(tmp_path) -> None:
    a = load_dataset("mnist1d", root=tmp_path, seed=0, num_samples=SAMPLES)
    b = load_dataset("mnist1d", root=tmp_path, seed=1, num_samples=SAMPLES)
    assert not torch.equal(a.test.tensors[0], b.test.tensors[0])
    assert len(list((tmp_path / "mnist1d").iterdir())) == 1


def test_generation_leaves_global_generators_alone(tmp_path) -> None:
    np.random.seed(123)
    random.seed(123)
    numpy_before, python_before = np.random.get_state()[1].copy(), random.getstate()
    mnist1d_module.generate_samples(SAMPLES, 42)
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    assert random.getstate() == python_before


def test_unwritable_cache_warns_and_still_loads(tmp_path) -> None:
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="could not cache MNIST-1D"):
        splits = load_dataset("mnist1d", root=blocker, num_samples=SAMPLES)
    assert len(splits.train) == 160


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_samples": 205}, "num_samples must be a multiple of 10"),
        ({"num_samples": 10}, "num_samples must be an integer >= 20"),
        ({"generation_seed": -3}, "generation_seed must be an integer >= 0"),
        ({"samples": 100}, "allowed options: 'num_samples', 'generation_seed', 'test_fraction'"),
    ],
)
def test_bad_options_are_named(tmp_path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_dataset("mnist1d", root=tmp_path, **options)


def _rows_of(splits, pooled: np.ndarray) -> list[int]:
    """Indices of the pooled raw samples that form the training split (matched after undoing standardisation)."""
    raw = splits.train.tensors[0][:, 0].double() * splits.std[0] + splits.mean[0]
    distances = torch.cdist(raw, torch.from_numpy(pooled).double())
    nearest = distances.argmin(dim=1)
    assert distances.min(dim=1).values.max() < 1e-4
    return nearest.tolist()
