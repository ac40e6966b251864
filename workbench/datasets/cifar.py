"""CIFAR-10 and CIFAR-100, read from the extracted python-pickle release (the files torchvision also downloads).

The files are read here rather than through ``torchvision.datasets`` because its reader insists on the release's
md5 sums (so small test sets in the same format could not be read) and because torchvision is optional.
torchvision is imported only to download, when asked to.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench._checks import check_bool, check_choice, check_int
from workbench.datasets.augment import crop_flip_for
from workbench.datasets.splits import DatasetSplits, standardized_splits

PIXEL_MAX = 255
CROP_PADDING = 4  # the standard CIFAR protocol (He et al. 2016; Zagoruyko & Komodakis 2016; Foret et al. 2021)


@dataclass(frozen=True)
class CifarRelease:
    """Where one CIFAR release lives on disk and on the web.

    Attributes:
        name: the dataset's registered name, e.g. ``"cifar10"``.
        title: readable name, e.g. ``"CIFAR-10"``.
        folder: directory the archive extracts to.
        train_files, test_files: pickle files of each split, in order.
        meta_file: pickle file with the class names.
        url: the archive on the authors' site; md5: its checksum (the values torchvision uses).
    """

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    url: str
    md5: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)

    @property
    def archive(self) -> str:
        """The archive's file name, e.g. ``"cifar-10-python.tar.gz"``."""
        return self.url.rsplit("/", 1)[-1]


CIFAR10 = CifarRelease(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{k}" for k in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarRelease(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def load_cifar10(*, root: Path, download: bool, subset: int | None = None, augment: bool = False) -> DatasetSplits:
    """CIFAR-10: 32×32 colour images of 10 classes, input shape ``(3, 32, 32)``, the official 50,000 / 10,000 split.

    Args:
        root: directory holding ``cifar-10-batches-py/`` (or that folder itself).
        download: fetch and extract the archive into ``root`` when the files are missing (needs torchvision).
        subset: keep only the first ``subset`` training images (the release is in random order); ``None``: all.
        augment: attach the standard training augmentation (pad 4, random 32×32 crop, horizontal flip) as
            ``DatasetSplits.augment``, for the training loop to apply per batch.
    """
    return _load_cifar(CIFAR10, root, download, subset, augment, "labels", "label_names")


def load_cifar100(
    *, root: Path, download: bool, subset: int | None = None, augment: bool = False, labels: str = "fine"
) -> DatasetSplits:
    """CIFAR-100: 32×32 colour images, input shape ``(3, 32, 32)``, the official 50,000 / 10,000 split.

    Args:
        root: directory holding ``cifar-100-python/`` (or that folder itself).
        download: fetch and extract the archive into ``root`` when the files are missing (needs torchvision).
        subset: keep only the first ``subset`` training images (the release is in random order); ``None``: all.
        augment: attach the standard training augmentation as ``DatasetSplits.augment`` (see ``load_cifar10``).
        labels: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
    """
    check_choice("labels", labels, ("fine", "coarse"))
    return _load_cifar(
        CIFAR100, root, download, subset, augment, f"{labels}_labels", f"{labels}_label_names"
    )


def find_release(release: CifarRelease, root: Path, download: bool) -> Path:
    """The directory holding all of ``release``'s files: ``root/folder`` or ``root`` itself; download if allowed.

    Raises:
        FileNotFoundError: naming the directory searched, the missing files and how to get them.
        ImportError: for ``download=True`` without torchvision, saying which file to put where instead.
        OSError: for a download that failed (no network, a bad checksum), saying which file to put where instead.
    """
    directory = release_directory(release, root)
    if directory is not None:
        return directory
    if download:
        _download(release, root)
        return find_release(release, root, download=False)
    raise FileNotFoundError(
        f"{release.title} not found: {root / release.folder} lacks {', '.join(missing_files(release, root))}. "
        f"Run `workbench data prepare {release.name}` or pass download=True (needs torchvision) to fetch it into "
        f"{root}; {manual_steps(release, root)}"
    )


def release_directory(release: CifarRelease, root: Path) -> Path | None:
    """``root/folder`` or ``root`` itself, whichever holds all of ``release``'s files; None when neither does."""
    for directory in (root / release.folder, root):
        if all((directory / name).is_file() for name in release.files):
            return directory
    return None


def missing_files(release: CifarRelease, root: Path) -> list[str]:
    """The files of ``release`` that ``root/folder`` lacks."""
    return [name for name in release.files if not (root / release.folder / name).is_file()]


def manual_steps(release: CifarRelease, root: Path) -> str:
    """How to put ``release`` under ``root`` by hand (what an offline machine needs), as one sentence."""
    return (
        f"by hand (e.g. offline): download {release.url} (md5 {release.md5}) on a machine with internet, copy "
        f"{release.archive} to {root} and extract it there (tar -xzf {root / release.archive} -C {root}), which "
        f"gives {root / release.folder}/ with {', '.join(release.files)}; or copy an extracted {release.folder}/ "
        f"folder into {root}"
    )


def _load_cifar(
    release: CifarRelease,
    root: Path,
    download: bool,
    subset: int | None,
    augment: bool,
    label_key: str,
    names_key: str,
) -> DatasetSplits:
    check_bool("augment", augment)
    if subset is not None:
        subset = check_int("subset", subset, minimum=1)
    directory = find_release(release, Path(root), download)
    train_images, train_labels = _read_batches(directory, release.train_files, label_key, subset)
    if subset is not None and subset > len(train_labels):
        raise ValueError(f"subset must be an integer in [1, {len(train_labels)}] (the training images), got {subset}")
    test_images, test_labels = _read_batches(directory, release.test_files, label_key, None)
    class_names = tuple(_unpickle(directory / release.meta_file)[names_key])
    kept = "all" if subset is None else f"first {subset} of"
    return standardized_splits(
        release.name,
        (_to_unit_floats(train_images), torch.from_numpy(train_labels)),
        (_to_unit_floats(test_images), torch.from_numpy(test_labels)),
        class_names=class_names,
        description=(
            f"{release.title} ({len(class_names)} classes) from {directory}; {kept} {len(train_labels)} train / "
            f"{len(test_labels)} test (official split)"
        ),
        augment=crop_flip_for(CROP_PADDING) if augment else None,
    )


def _read_batches(
    directory: Path, files: tuple[str, ...], label_key: str, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3072)`` uint8 rows and ``(N,)`` int64 labels from pickle batches, stopping once ``limit`` rows are read."""
    images, labels = [], []
    for name in files:
        batch = _unpickle(directory / name)
        images.append(np.asarray(batch["data"], dtype=np.uint8))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
        if limit is not None and sum(len(chunk) for chunk in labels) >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(labels)[:limit]


def _unpickle(path: Path) -> dict:
    """One file of the release (a pickled dict written by Python 2; latin-1 decodes its byte strings)."""
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def _to_unit_floats(rows: np.ndarray) -> torch.Tensor:
    """``(N, 3072)`` uint8 rows (red, green, blue planes of 32×32) → ``(N, 3, 32, 32)`` float32 in [0, 1]."""
    return torch.from_numpy(rows).view(len(rows), 3, 32, 32).float().div_(PIXEL_MAX)


def _download(release: CifarRelease, root: Path) -> None:
    """Fetch and extract ``release`` into ``root`` through torchvision (which checks the md5)."""
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError as error:
        raise ImportError(
            f"downloading {release.title} needs torchvision, which is not installed (pip install torchvision); "
            f"without it, put the files in place {manual_steps(release, root)}"
        ) from error
    try:
        download_and_extract_archive(release.url, str(root), md5=release.md5)
    except (OSError, RuntimeError) as error:  # no network (URLError is an OSError), a bad checksum, a full disk
        raise OSError(
            f"could not download {release.title} from {release.url} into {root} ({error}); put the files in place "
            f"{manual_steps(release, root)}"
        ) from error
