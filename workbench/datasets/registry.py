"""Datasets by name: ``load_dataset("moons", seed=0, num_samples=500)``; options are checked against each loader."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from workbench._checks import check_bool, check_choice, check_int
from workbench._options import check_options, option_defaults
from workbench.datasets.cifar import load_cifar10, load_cifar100
from workbench.datasets.digits import load_digits
from workbench.datasets.mnist1d import load_mnist1d
from workbench.datasets.root import resolve_data_root
from workbench.datasets.splits import DatasetSplits
from workbench.datasets.text import load_python_source
from workbench.datasets.toy import load_blobs, load_moons, load_spirals

_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "moons": load_moons,
    "spirals": load_spirals,
    "blobs": load_blobs,
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "pysource": load_python_source,
}
DATASETS: tuple[str, ...] = tuple(_LOADERS)
_SHARED_ARGS = ("root", "download", "seed")
_MAX_SEED = 2**32 - 1  # numpy's legacy RandomState (used by scikit-learn's generators) takes seeds below 2**32


def dataset_options(name: str) -> dict[str, Any]:
    """The options ``load_dataset(name, ...)`` accepts, mapped to their defaults (for CLIs and widgets).

    Raises:
        ValueError: for an unknown ``name``, listing the known ones.
    """
    check_choice("dataset", name, DATASETS)
    return option_defaults(_LOADERS[name], exclude=_SHARED_ARGS)


def dataset_summary(name: str) -> str:
    """One line on what dataset ``name`` is (its loader's docstring's first line).

    Raises:
        ValueError: for an unknown ``name``, listing the known ones.
    """
    check_choice("dataset", name, DATASETS)
    return (inspect.getdoc(_LOADERS[name]) or name).splitlines()[0]


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0, **options: Any
) -> DatasetSplits:
    """Load a dataset by name, standardised on its training split, as float32 inputs and int64 targets.

    Args:
        name: one of ``DATASETS``: ``"moons"``, ``"spirals"``, ``"blobs"`` (2-D toys, input ``(2,)``),
            ``"digits"`` (UCI 8×8, ``(1, 8, 8)`` or ``(64,)``), ``"mnist1d"`` (``(1, 40)``), ``"cifar10"``,
            ``"cifar100"`` (``(3, 32, 32)``).
        root: data directory: where CIFAR lives or is downloaded to, and where MNIST-1D is cached;
            ``None``: ``$WORKBENCH_DATA``, else the checkout's ``data/``, else ``~/.cache/workbench``
            (``workbench.datasets.root.resolve_data_root``).
        download: allow downloading a missing CIFAR release (needs torchvision); the other sets never download.
        seed: seed of the generated points and of the train/test split, in [0, 2**32 - 1]; the same seed gives
            identical tensors. CIFAR keeps its official split and ignores it.
        **options: per-dataset options; ``dataset_options(name)`` lists them with their defaults.

    Raises:
        ValueError: for an unknown name or option, or an option value out of range (naming the allowed values).
        FileNotFoundError: for CIFAR files missing with ``download=False`` (saying where it looked and how to get
            them).
        ImportError: for ``download=True`` without torchvision.
    """
    allowed = dataset_options(name)
    check_options(f"dataset {name!r}", options, allowed)
    check_bool("download", download)
    check_int("seed", seed, minimum=0, maximum=_MAX_SEED)
    loader = _LOADERS[name]
    shared = {"root": resolve_data_root(root).path, "download": download, "seed": seed}
    accepted = inspect.signature(loader).parameters
    return loader(**{key: value for key, value in shared.items() if key in accepted}, **options)
