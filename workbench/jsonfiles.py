"""JSON files every reader accepts: written atomically, with NaN and infinities as null."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_json(path: str | Path, values: Any) -> Path:
    """Write ``values`` as indented JSON atomically (a temporary file in the same folder, then a rename);
    NaN and infinities become null, so that every JSON reader accepts the file (Python's ``json`` would write
    the non-standard ``NaN``)."""
    path = Path(path)
    text = json.dumps(finite(values), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``, or None when the file does not exist.

    Raises:
        ValueError: naming the file when it cannot be read or is not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file: {error}") from None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
