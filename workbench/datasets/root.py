"""Where datasets and caches live: the data root, resolved in one documented order (see data/README.md).

1. an explicit directory: ``--data-dir`` on the command line, ``root=`` in Python;
2. ``$WORKBENCH_DATA`` (when set and not empty);
3. the checkout's ``data/`` folder, when ``workbench`` is imported from a source checkout (the directory above the
   package holds ``pyproject.toml`` and ``data/README.md``; an editable install counts as a checkout);
4. ``~/.cache/workbench`` for an installed package.

The root is where a machine keeps its files, not part of what determines a run, so it is not a ``TrainConfig``
field: the same config gives the same run on a laptop and on a cluster whose data sits elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT_VARIABLE = "WORKBENCH_DATA"
USER_CACHE = Path("~/.cache/workbench")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the ``workbench`` package directory
CHECKOUT_MARKERS = ("pyproject.toml", "data/README.md")  # files of a source checkout, relative to its top

EXPLICIT, ENVIRONMENT = "--data-dir / root=", f"${DATA_ROOT_VARIABLE}"
CHECKOUT, USER = "the checkout's data/", "the user cache of an installed package"


@dataclass(frozen=True)
class DataRoot:
    """A resolved data root.

    Attributes:
        path: the absolute directory (it may not exist yet; preparing a dataset creates it).
        origin: which rule chose it: ``EXPLICIT``, ``ENVIRONMENT``, ``CHECKOUT`` or ``USER``.
    """

    path: Path
    origin: str


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> DataRoot:
    """The data root by the documented order: ``root``, ``$WORKBENCH_DATA``, the checkout's ``data/``, the user cache.

    ``~`` is expanded; a relative path is taken relative to the current directory now, and returned absolute (so it
    can be handed to worker processes that start elsewhere).

    Raises:
        ValueError: when ``root`` is neither None nor a path (str or os.PathLike), or is empty.
    """
    if root is not None:
        if not isinstance(root, str | os.PathLike) or not os.fspath(root):
            raise ValueError(f"root must be a directory path (str or os.PathLike) or None, got {root!r}")
        return DataRoot(_absolute(Path(root)), EXPLICIT)
    variable = os.environ.get(DATA_ROOT_VARIABLE, "")
    if variable:
        return DataRoot(_absolute(Path(variable)), ENVIRONMENT)
    checkout = checkout_data_dir()
    if checkout is not None:
        return DataRoot(checkout, CHECKOUT)
    return DataRoot(_absolute(USER_CACHE), USER)


def default_root() -> Path:
    """The data root when none is given: ``resolve_data_root(None).path``."""
    return resolve_data_root().path


def checkout_data_dir() -> Path | None:
    """The ``data/`` folder of the source checkout ``workbench`` runs from, or None for an installed package."""
    top = PACKAGE_DIR.parent
    return top / "data" if all((top / marker).is_file() for marker in CHECKOUT_MARKERS) else None


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()
