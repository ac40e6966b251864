"""CIFAR-10/100 read from small fake releases written in the real pickle format; download and missing-file paths."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.datasets import load_dataset
from workbench.datasets.cifar import CIFAR10, CIFAR100

PER_BATCH, TEST_IMAGES = 4, 6
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(path: Path, content: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def write_fake_cifar10(root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Five training batches of ``PER_BATCH`` images, a test batch and ``batches.meta``, as the release lays them
    out. Returns the train and test ``(N, 3072)`` uint8 rows and labels in file order."""
    rng = np.random.default_rng(seed)
    folder = root / CIFAR10.folder
    folder.mkdir(parents=True)
    rows, labels = [], []
    for index, name in enumerate([*CIFAR10.train_files, *CIFAR10.test_files]):
        count = TEST_IMAGES if name == "test_batch" else PER_BATCH
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        targets = rng.integers(0, 10, count).tolist()
        _dump(
            folder / name,
            {"batch_label": f"batch {index}", "labels": targets, "data": data, "filenames": ["x.png"] * count},
        )
        rows.append(data)
        labels.append(np.array(targets))
    _dump(folder / "batches.meta", {"num_cases_per_batch": PER_BATCH, "label_names": CIFAR10_NAMES, "num_vis": 3072})
    return np.concatenate(rows[:-1]), np.concatenate(labels[:-1]), rows[-1], labels[-1]


def write_fake_cifar100(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """``train``, ``test`` and ``meta`` with fine and coarse labels; returns the train fine and coarse labels."""
    rng = np.random.default_rng(1)
    folder = root / CIFAR100.folder
    folder.mkdir(parents=True)
    fine = {}
    coarse = {}
    for name, count in (("train", 12), ("test", 5)):
        fine[name], coarse[name] = rng.integers(0, 100, count), rng.integers(0, 20, count)
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        _dump(
            folder / name,
            {
                "filenames": ["x.png"] * count,
                "fine_labels": fine[name].tolist(),
                "coarse_labels": coarse[name].tolist(),
                "data": data,
            },
        )
    meta = {
        "fine_label_names": [f"fine{k}" for k in range(100)],
        "coarse_label_names": [f"coarse{k}" for k in range(20)],
    }
    _dump(folder / "meta", meta)
    return fine["train"], coarse["train"]


def unstandardised_pixels(splits, part: str) -> np.ndarray:
    """Undo the per-channel standardisation and map back to 0..255 ``(N, 3072)`` rows."""
    inputs = getattr(splits, part).tensors[0].double()
    mean = torch.tensor(splits.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(splits.std, dtype=torch.float64).view(1, 3, 1, 1)
    return ((inputs * std + mean) * 255).reshape(len(inputs), -1).numpy()


def test_cifar10_reads_the_release_with_train_statistics(tmp_path) -> None:
    train_rows, train_labels, test_rows, test_labels = write_fake_cifar10(tmp_path)
    splits = load_dataset("cifar10", root=tmp_path)
    assert splits.input_shape == (3, 32, 32) and splits.num_classes == 10
    assert splits.class_names == tuple(CIFAR10_NAMES)
    assert splits.train.tensors[0].dtype == torch.float32 and splits.train.tensors[1].dtype == torch.int64
    np.testing.assert_allclose(unstandardised_pixels(splits, "train"), train_rows, atol=1e-3)
    np.testing.assert_allclose(unstandardised_pixels(splits, "test"), test_rows, atol=1e-3)
    assert splits.train.tensors[1].tolist() == train_labels.tolist()
    assert splits.test.tensors[1].tolist() == test_labels.tolist()
    channels = train_rows.reshape(-1, 3, 1024).transpose(1, 0, 2).reshape(3, -1) / 255  # (3, N·1024) in [0, 1]
    np.testing.assert_allclose(splits.mean, channels.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(splits.std, channels.std(axis=1), rtol=1e-5)
    assert splits.augment is None


def test_subset_keeps_the_first_images_across_batches(tmp_path) -> None:
    train_rows, train_labels, _, _ = write_fake_cifar10(tmp_path)
    splits = load_dataset("cifar10", root=tmp_path, subset=PER_BATCH + 3)
    np.testing.assert_allclose(unstandardised_pixels(splits, "train"), train_rows[: PER_BATCH + 3], atol=1e-3)
    assert splits.train.tensors[1].tolist() == train_labels[: PER_BATCH + 3].tolist()
    channels = train_rows[: PER_BATCH + 3].reshape(-1, 3, 1024).transpose(1, 0, 2).reshape(3, -1) / 255
    np.testing.assert_allclose(splits.mean, channels.mean(axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match=r"subset must be an integer in \[1, 20\]"):
        load_dataset("cifar10", root=tmp_path, subset=21)
    with pytest.raises(ValueError, match="subset must be an integer >= 1"):
        load_dataset("cifar10", root=tmp_path, subset=0)


def test_root_may_be_the_release_folder_itself(tmp_path) -> None:
    write_fake_cifar10(tmp_path)
    assert len(load_dataset("cifar10", root=tmp_path / CIFAR10.folder).train) == 5 * PER_BATCH


def test_cifar100_fine_and_coarse_labels(tmp_path) -> None:
    fine, coarse = write_fake_cifar100(tmp_path)
    splits = load_dataset("cifar100", root=tmp_path)
    assert splits.num_classes == 100 and splits.class_names[7] == "fine7"
    assert splits.train.tensors[1].tolist() == fine.tolist() and len(splits.test) == 5
    coarse_splits = load_dataset("cifar100", root=tmp_path, labels="coarse")
    assert coarse_splits.num_classes == 20 and coarse_splits.train.tensors[1].tolist() == coarse.tolist()
    with pytest.raises(ValueError, match="labels must be one of 'fine', 'coarse'"):
        load_dataset("cifar100", root=tmp_path, labels="super")


def test_augment_option_pads_with_standardised_black(tmp_path) -> None:
    write_fake_cifar10(tmp_path)
    splits = load_dataset("cifar10", root=tmp_path, augment=True)
    batch = torch.full((16, 3, 32, 32), 5.0)
    augmented = splits.augment(batch, torch.Generator().manual_seed(0))
    assert augmented.shape == batch.shape
    for channel, (mean, std) in enumerate(zip(splits.mean, splits.std, strict=True)):
        values = augmented[:, channel].unique().tolist()  # sorted; black is below 5 in standardised units
        assert values == pytest.approx([-mean / std, 5.0])


def test_missing_files_say_where_and_how(tmp_path) -> None:
    (tmp_path / CIFAR10.folder).mkdir()
    (tmp_path / CIFAR10.folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / CIFAR10.folder) in message
    assert "lacks data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta. " in message
    assert "download=True" in message and CIFAR10.url in message


def test_download_without_torchvision_says_how_to_install(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision...` raise ImportError
    with pytest.raises(ImportError, match="pip install torchvision") as error:
        load_dataset("cifar100", root=tmp_path, download=True)
    assert CIFAR100.url in str(error.value)


def test_download_uses_torchvision_then_reads(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, download_root: str, md5: str) -> None:
        calls.append((url, download_root, md5))
        write_fake_cifar10(Path(download_root))

    _install_fake_torchvision(monkeypatch, fake_download)
    splits = load_dataset("cifar10", root=tmp_path, download=True)
    assert calls == [(CIFAR10.url, str(tmp_path), CIFAR10.md5)]
    assert len(splits.train) == 5 * PER_BATCH
    load_dataset("cifar10", root=tmp_path, download=True)  # present now: no second download
    assert len(calls) == 1


def _install_fake_torchvision(monkeypatch: pytest.MonkeyPatch, download) -> None:
    package, datasets, utils = (
        types.ModuleType(n) for n in ("torchvision", "torchvision.datasets", "torchvision.datasets.utils")
    )
    utils.download_and_extract_archive = download
    package.datasets, datasets.utils = datasets, utils
    for module in (package, datasets, utils):
        monkeypatch.setitem(sys.modules, module.__name__, module)
