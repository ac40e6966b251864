"""Small helpers the panels share: setting widgets by name, and an error line."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets


def set_values(controls: Mapping[str, widgets.ValueWidget], settings: Mapping[str, Any]) -> None:
    """Set ``controls[name].value`` for every setting.

    Raises:
        ValueError: for a name without a widget, listing those with one.
    """
    unknown = sorted(set(settings) - set(controls))
    if unknown:
        raise ValueError(f"no setting {', '.join(unknown)}; settings: {', '.join(controls)}")
    for name, value in settings.items():
        controls[name].value = value


def error_html(error: BaseException | str) -> str:
    """An error message for a status line (escaped, in red)."""
    return f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
