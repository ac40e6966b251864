"""What the panels share: a base class (display and set by name), setting widgets by name, an error line, and
figures that fill the width of the output they are shown in."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go


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


def fill_width(figure: go.FigureWidget) -> go.FigureWidget:
    """Make every view of ``figure`` as wide as the output it is shown in (its layout sets no width); returns it.

    plotly 7.1's FigureWidget view draws its figure as soon as the view is created, which in JupyterLab is often
    before the view is attached to the page: plotly.js then cannot measure the container, falls back to 700 px,
    and the view listens to no later resize. So each time a view appears (ipywidgets' view count, which tracking
    turns on here, grows), the figure is told to size itself again (``autosize``, off and on: plotly only sends
    changes), by which time the view sits in its output.
    """

    def on_views(change: dict[str, Any]) -> None:
        if (change["new"] or 0) > (change["old"] or 0):
            figure.plotly_relayout({"autosize": False})
            figure.plotly_relayout({"autosize": True})

    figure._view_count = 0
    figure.observe(on_views, names="_view_count")
    return figure


class Panel:
    """A panel of widgets: displaying it displays ``widget``; ``controls`` are its settings by name.

    Subclasses set ``widget``, ``controls`` and ``status`` (the line errors go to) in their constructor.
    """

    widget: widgets.Widget
    controls: dict[str, widgets.ValueWidget]
    status: widgets.HTML
    # errors a widget callback shows on the status line instead of raising into the kernel's log
    shown_errors: tuple[type[Exception], ...] = (ValueError,)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        return self.widget._repr_mimebundle_(**kwargs)

    def set(self, **settings: Any) -> None:
        """Set widgets by name (the keys of ``controls``).

        Raises:
            ValueError: for an unknown name, listing the known ones.
        """
        set_values(self.controls, settings)

    def _show_error(self, error: Exception) -> None:
        self.status.value = error_html(error)

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a widget callback's ``action``; a ``shown_errors`` error goes to the status line."""
        try:
            action()
        except self.shown_errors as error:
            self._show_error(error)
