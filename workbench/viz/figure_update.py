"""FigureUpdate: changes to a plotly figure's traces and layout, collected and applied as one ``plotly_update``.

A ``FigureWidget`` sends each ``plotly_update`` to the browser as one message, which plotly.js applies as one
redraw; a change of layout items only (annotations, shapes) redraws those items and no trace. Traces are found by
their ``meta``, so callers never count indexes.

Values must be JSON-ready (floats, lists, ``None``): see ``workbench.viz.toy_figures`` for why a live figure is
never handed numpy arrays. ``plotly_update`` also skips the per-property validation of ``update_traces``, which
made a step of the toy explorer cost 0.25 s of kernel time with 30 layout items updated one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.basedatatypes import Undefined
from plotly.basewidget import BaseFigureWidget

# plotly.js animation options: no transition, and no redraw of the whole figure at the end of the frame
_NO_REDRAW = {"transition": {"duration": 0, "easing": "linear"}, "frame": {"duration": 0, "redraw": False}}


class FigureUpdate:
    """Changes to ``figure``, applied by ``send``.

    Raises (from ``trace``):
        ValueError: naming a ``meta`` the figure does not have.
    """

    def __init__(self, figure: go.Figure) -> None:
        self.figure = figure
        self._traces = {str(trace.meta): index for index, trace in enumerate(figure.data) if trace.meta is not None}
        self.restyle: dict[int, dict[str, Any]] = {}
        self.relayout: dict[str, Any] = {}

    def trace(self, meta: str, **values: Any) -> None:
        """Set properties of the trace whose ``meta`` is ``meta`` (e.g. ``x=[...]``, ``marker={"size": 3}``)."""
        if meta not in self._traces:
            raise ValueError(f"the figure has no trace with meta {meta!r}; it has {sorted(self._traces)}")
        self.restyle.setdefault(self._traces[meta], {}).update(values)

    def layout(self, values: Mapping[str, Any]) -> None:
        """Set layout properties by path (``{"xaxis.range": [0, 1], "title.text": "..."}``)."""
        self.relayout.update(values)

    def send(self, *, quick: bool = False) -> None:
        """Apply every change in one ``plotly_update`` (nothing when there is none).

        ``quick``: for changes of trace data and axis ranges only, on a ``FigureWidget``: send them as an animation
        frame of zero duration that plotly.js applies without redrawing the figure (``frame.redraw`` false), so
        only the traces changed are drawn again. ``FigureWidget.batch_animate`` cannot ask for that (plotly.js
        then redraws everything at the end of the frame), hence the batch machinery it is built on, the same
        calls with other options.
        """
        if not self.restyle and not self.relayout:
            return
        if quick and isinstance(self.figure, BaseFigureWidget):
            self._animate()
            return
        indexes = sorted(self.restyle)
        keys = sorted({key for values in self.restyle.values() for key in values})
        restyle = {key: [self.restyle[index].get(key, Undefined) for index in indexes] for key in keys}
        self.figure.plotly_update(
            restyle_data=restyle or None, relayout_data=self.relayout or None, trace_indexes=indexes or None
        )
        self.restyle, self.relayout = {}, {}

    def _animate(self) -> None:
        figure = self.figure
        figure._in_batch_mode = True
        try:
            for index, values in self.restyle.items():
                figure.data[index].update(values)
            figure.layout.update(self.relayout)
        finally:
            figure._in_batch_mode = False
        figure._perform_batch_animate(_NO_REDRAW)
        self.restyle, self.relayout = {}, {}
