"""MNIST-1D (Greydanus & Kobak 2024), generated locally with the ``mnist1d`` package; never downloaded.

Generation (about a second for 5,000 samples) is cached as an ``.npz`` under ``root/mnist1d/``; the file name
holds the sample count, generation seed and ``mnist1d`` version, which together fix every generation argument.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from workbench._checks import check_int
from workbench.datasets.splits import DatasetSplits, check_test_fraction, standardized_splits, stratified_split

NUM_CLASSES = 10
CACHE_FOLDER = "mnist1d"  # under the data root
CACHE_FILE_MODE = 0o644  # owner writes, everyone reads (as a file created with the usual umask 022)


def load_mnist1d(
    *, root: Path, seed: int, num_samples: int = 5000, generation_seed: int = 42, test_fraction: float = 0.2
) -> DatasetSplits:
    """MNIST-1D sequences of length 40, input shape ``(1, 40)``, standardised with the training split's statistics.

    The samples are ``mnist1d.data.make_dataset`` with the package's default arguments except ``num_samples`` and
    ``seed`` (``generation_seed=42`` is the package's default). Its own 80/20 split is pooled and ``seed`` draws a
    stratified split instead, so every split seed sees the same samples; its whole-set standardisation is
    replaced by the training split's (one affine map for another).

    Args:
        root: cache directory (the file goes in ``root/mnist1d/``).
        seed: seed of the stratified split.
        num_samples: samples in both splits together, a multiple of 10 (equal per class), at least 20.
        generation_seed: seed of the generator (the procedure reseeds numpy's and Python's global generators
            with it; their states are restored afterwards).
        test_fraction: fraction of each class held out, in (0, 1).
    """
    num_samples = check_int("num_samples", num_samples, minimum=2 * NUM_CLASSES)
    if num_samples % NUM_CLASSES:
        raise ValueError(
            f"num_samples must be a multiple of {NUM_CLASSES} (equal samples per class), got {num_samples}"
        )
    generation_seed = check_int("generation_seed", generation_seed, minimum=0)
    test_fraction = check_test_fraction(test_fraction)
    inputs, targets = cached_samples(Path(root), num_samples, generation_seed)
    train_index, test_index = stratified_split(targets, test_fraction, seed)
    sequences, labels = torch.from_numpy(inputs).unsqueeze(1), torch.from_numpy(targets)  # (N, 1, 40), (N,)
    return standardized_splits(
        "mnist1d",
        (sequences[train_index], labels[train_index]),
        (sequences[test_index], labels[test_index]),
        class_names=tuple(str(k) for k in range(NUM_CLASSES)),
        description=(
            f"MNIST-1D, {num_samples} sequences of length {inputs.shape[1]} (generation seed {generation_seed}); "
            f"{len(train_index)} train / {len(test_index)} test (stratified, seed {seed})"
        ),
    )


def cached_samples(root: Path, num_samples: int, generation_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 40)`` float32 sequences and ``(N,)`` int64 labels, read from the cache or generated and cached."""
    path = cache_path(root, num_samples, generation_seed)
    if path.exists():
        with np.load(path) as stored:
            return stored["inputs"], stored["targets"]
    inputs, targets, args = generate_samples(num_samples, generation_seed)
    _write_atomically(path, inputs=inputs, targets=targets, args=np.array(json.dumps(args)))
    return inputs, targets


def cache_path(root: Path, num_samples: int, generation_seed: int) -> Path:
    """The cache file of one generation under ``root/mnist1d/`` (its name holds the installed mnist1d version)."""
    return root / CACHE_FOLDER / f"mnist1d_n{num_samples}_seed{generation_seed}_v{_mnist1d_version()}.npz"


def generate_samples(num_samples: int, generation_seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run ``mnist1d.data.make_dataset``; return pooled float32 inputs, int64 labels and the arguments used."""
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    args.num_samples = num_samples
    args.seed = generation_seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = mnist1d.data.make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    inputs = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    targets = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    used = {key: value for key, value in vars(args).items() if key != "url"}
    return inputs, targets, used


def _mnist1d_version() -> str:
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError as error:
        raise ValueError("the 'mnist1d' dataset needs the mnist1d package: pip install mnist1d") from error


def _write_atomically(path: Path, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` through a temporary file in the same directory and rename it, so readers never see half."""
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            np.savez(handle, **arrays)
        os.chmod(temporary, CACHE_FILE_MODE)  # a temporary file is private; others sharing the data root read it
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        warnings.warn(f"could not cache MNIST-1D at {path} ({error}); it will be generated again", stacklevel=3)
