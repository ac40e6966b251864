"""Argument checks shared by the public API: each failure is a ValueError naming the parameter."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking ``minimum <= value <= maximum``.

    Raises:
        ValueError: naming ``name`` and the allowed range when the value is not an integer or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float after checking it lies in the given interval.

    Raises:
        ValueError: naming ``name`` and the allowed interval.
    """
    interval = _interval_text(minimum, maximum, min_inclusive, max_inclusive)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    too_low = minimum is not None and (value < minimum or (not min_inclusive and value == minimum))
    too_high = maximum is not None and (value > maximum or (not max_inclusive and value == maximum))
    if too_low or too_high:
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        ValueError: naming ``name`` and listing the allowed values.
    """
    allowed = list(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not merely truthy).

    Raises:
        ValueError: naming ``name`` when the value is not a bool.
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_writable_folder(name: str, path: Any) -> Path:
    """Return ``path`` as a ``Path`` after making sure it is a folder this process can write (creating it).

    Raises:
        ValueError: naming ``name`` and the path when it is empty, a file, inside a file, or cannot be created or
            written.
    """
    if not str(path).strip():
        raise ValueError(f"{name} must name a folder, got an empty path")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"{name} {folder} cannot be created or written: {error.strerror or error}") from None
    return folder


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _interval_text(minimum: float | None, maximum: float | None, min_inclusive: bool, max_inclusive: bool) -> str:
    left = ("[" if min_inclusive else "(") + ("-inf" if minimum is None else f"{minimum:g}")
    right = "inf)" if maximum is None else f"{maximum:g}" + ("]" if max_inclusive else ")")
    return f"{left}, {right}"
