"""What each dataset keeps on disk, whether it is there, and putting it there (``workbench data list|prepare``).

Three origins (data/README.md describes each dataset, its license and size):

- generated locally: the 2-D toys are drawn in memory at each load (nothing on disk); MNIST-1D is generated once
  and cached under ``<root>/mnist1d/``;
- shipped by a dependency: the UCI digits are a file inside scikit-learn, ``pysource`` is read from this Python's
  standard library (the data root is not used);
- downloaded on request: CIFAR-10/100 under ``<root>/cifar-10-batches-py/`` and ``<root>/cifar-100-python/``.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from workbench._checks import check_choice, check_writable_folder
from workbench.datasets import mnist1d
from workbench.datasets.cifar import CIFAR10, CIFAR100, CifarRelease, missing_files, release_directory
from workbench.datasets.registry import DATASETS, dataset_options, load_dataset
from workbench.datasets.root import DATA_ROOT_VARIABLE, resolve_data_root
from workbench.datasets.text import SOURCES

GENERATED, DEPENDENCY, DOWNLOADED = "generated locally", "shipped by a dependency", "downloaded on request"
IN_MEMORY, PRESENT, MISSING = "in memory", "present", "missing"
DIGITS_FILE = ("sklearn.datasets.data", "digits.csv.gz")  # (package, file) that sklearn's load_digits reads
_TOYS = ("moons", "spirals", "blobs")
_RELEASES = {release.name: release for release in (CIFAR10, CIFAR100)}
_CHOOSE_ROOT = f"pass --data-dir (root= in Python) or set ${DATA_ROOT_VARIABLE} to a writable directory"


@dataclass(frozen=True)
class DatasetStatus:
    """What one dataset has on disk.

    Attributes:
        name: the registered name.
        origin: ``GENERATED``, ``DEPENDENCY`` or ``DOWNLOADED``.
        path: the file or folder it is read from (None: generated in memory at each load, or the dependency that
            ships it is not installed).
        present: whether loading it needs no preparation (always True for the in-memory sets).
        size_bytes: bytes of the files at ``path`` (0 when nothing is there).
        detail: one sentence: what is there, or what is missing and what ``prepare`` would do.
    """

    name: str
    origin: str
    path: Path | None
    present: bool
    size_bytes: int
    detail: str

    @property
    def state(self) -> str:
        """``IN_MEMORY``, ``PRESENT`` or ``MISSING``."""
        if not self.present:
            return MISSING
        return IN_MEMORY if self.path is None else PRESENT


def dataset_status(name: str, root: str | os.PathLike[str] | None = None) -> DatasetStatus:
    """Whether dataset ``name`` is on disk under the data root ``root`` (resolved by ``resolve_data_root``).

    Reads only: nothing is created.

    Raises:
        ValueError: for an unknown name (listing the known ones), a bad ``root``, or a root that exists but is
            not a directory.
    """
    check_choice("name", name, DATASETS)
    data_root = resolve_data_root(root).path
    if data_root.exists() and not data_root.is_dir():
        raise ValueError(f"data root {data_root} is not a directory; {_CHOOSE_ROOT}")
    if name in _TOYS:
        return DatasetStatus(name, GENERATED, None, True, 0, "drawn in memory at each load; nothing to prepare")
    if name == "digits":
        return _digits_status()
    if name == "pysource":
        return _python_source_status()
    if name == "mnist1d":
        return _mnist1d_status(data_root)
    return _cifar_status(_RELEASES[name], data_root)


def prepare_dataset(name: str, root: str | os.PathLike[str] | None = None) -> DatasetStatus:
    """Put dataset ``name`` on disk (generate and cache MNIST-1D, download CIFAR); return its status afterwards.

    A dataset already present is left as it is. MNIST-1D is generated with the loader's default options (other
    sample counts are generated and cached on their first load).

    Raises:
        ValueError: for an unknown name, a bad ``root``, or a data root that cannot be created or written.
        ImportError: for CIFAR without torchvision, saying which file to copy where instead.
        OSError: for a CIFAR download that failed (e.g. offline), saying which file to copy where instead.
    """
    status = dataset_status(name, root)
    if status.present:
        return status
    data_root = resolve_data_root(root).path
    if status.origin != DEPENDENCY:
        check_writable(data_root)
    load_dataset(name, root=data_root, download=True)
    status = dataset_status(name, data_root)
    if not status.present:
        raise OSError(f"{name} was loaded but is still not on disk: {status.detail}")
    return status


def check_writable(root: Path) -> None:
    """Create ``root`` if needed and write (then delete) a temporary file in it.

    Raises:
        ValueError: naming the root and the operating system's reason.
    """
    try:
        check_writable_folder("data root", root)
    except ValueError as error:
        raise ValueError(f"{error}; {_CHOOSE_ROOT}") from None


def disk_bytes(path: Path) -> int:
    """Bytes of the file ``path``, or of all files below the folder ``path``; 0 when it does not exist."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        total += sum((Path(folder) / name).stat().st_size for name in files)
    return total


def format_size(size_bytes: int) -> str:
    """``57523`` → ``"57.5 kB"`` (decimal units, as the CIFAR authors list their archives)."""
    size = float(size_bytes)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _python_source_status() -> DatasetStatus:
    folder = Path(sysconfig.get_paths()["stdlib"])
    files = [folder / name for name in SOURCES]
    present = all(path.is_file() for path in files)
    detail = "files of this Python's standard library" if present else "this Python lacks a standard-library file"
    size = sum(disk_bytes(path) for path in files if path.is_file())
    return DatasetStatus("pysource", DEPENDENCY, folder, present, size, detail)


def _digits_status() -> DatasetStatus:
    package, file_name = DIGITS_FILE
    try:
        path = Path(str(resources.files(package) / file_name))
    except ModuleNotFoundError:
        return DatasetStatus("digits", DEPENDENCY, None, False, 0, "needs scikit-learn: pip install scikit-learn")
    present = path.is_file()
    detail = "inside scikit-learn" if present else f"scikit-learn has no {file_name}: reinstall scikit-learn"
    return DatasetStatus("digits", DEPENDENCY, path, present, disk_bytes(path), detail)


def _mnist1d_status(root: Path) -> DatasetStatus:
    folder = root / mnist1d.CACHE_FOLDER
    defaults = dataset_options("mnist1d")
    samples, seed = defaults["num_samples"], defaults["generation_seed"]
    try:
        default_file = mnist1d.cache_path(root, samples, seed)
    except ValueError as error:  # the mnist1d package is missing
        return DatasetStatus("mnist1d", GENERATED, folder, False, disk_bytes(folder), str(error))
    present = default_file.is_file()
    cached = len(list(folder.glob("*.npz"))) if folder.is_dir() else 0
    default = f"the default ({samples} samples, generation seed {seed})"
    detail = (
        f"{cached} cached file(s), {default} among them"
        if present
        else f"{default} is not cached yet ({cached} other file(s)); the first load or prepare generates it"
    )
    return DatasetStatus("mnist1d", GENERATED, folder, present, disk_bytes(folder), detail)


def _cifar_status(release: CifarRelease, root: Path) -> DatasetStatus:
    directory = release_directory(release, root)
    if directory is not None:
        return DatasetStatus(release.name, DOWNLOADED, directory, True, disk_bytes(directory), "all files there")
    folder = root / release.folder
    missing = missing_files(release, root)
    detail = f"lacks {', '.join(missing)}" if len(missing) < len(release.files) else "not downloaded"
    return DatasetStatus(release.name, DOWNLOADED, folder, False, disk_bytes(folder), detail)
