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
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(finite(values), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    temporary.replace(path)
    return path


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``, or None when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
