"""Live training charts: a plotly ``FigureWidget`` fed incrementally from a ``History``, throttled and thinned.

A FigureWidget resends a trace's whole arrays whenever they change (there is no "extend"), so the chart
(1) reads only the rows added since its last redraw (``History.rows_since``), (2) redraws at most every
``min_interval`` seconds and never more often than keeps its own cost under ``budget`` of the elapsed time,
(3) groups all trace changes of a redraw in one ``batch_update`` message and (4) thins each curve to
``max_points`` evenly spaced points. ``refresh`` is meant to be called from the thread that trains (a Trainer
callback), which then owns every update of the figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench._checks import check_float, check_int
from workbench.train import History
from workbench.ui._widgets import fill_width
from workbench.viz import run_colors
from workbench.viz.curves import run_widths
from workbench.viz.training_figures import (
    DASHBOARD_PANELS,
    ERROR_METRICS,
    Panel,
    Series,
    dashboard_layout,
    history_series,
    panel_metrics,
    run_traces,
    series_style,
    thin_indices,
)

#: Points kept per curve. A redraw resends every changed curve whole; at this size one redraw of all eight
#: curves costs a few milliseconds (benchmarks/RESULTS.md, "Live charts").
DEFAULT_MAX_POINTS = 1000
#: Shortest time between redraws, in seconds (100–200 ms keeps a chart fluid; see /work/shared/JUPYTER.md).
DEFAULT_MIN_INTERVAL = 0.2
#: Largest share of the elapsed time the chart may spend redrawing (the issue's 5 % of training throughput).
DEFAULT_BUDGET = 0.05


class Throttle:
    """Says when the next redraw is due: ``min_interval`` after the last one, and late enough that redraws take
    at most ``budget`` of the time (a redraw of ``c`` seconds waits at least ``c / budget``)."""

    def __init__(self, min_interval: float = DEFAULT_MIN_INTERVAL, budget: float = DEFAULT_BUDGET) -> None:
        self.min_interval = check_float("min_interval", min_interval, minimum=0.0)
        self.budget = check_float("budget", budget, minimum=0.0, maximum=1.0, min_inclusive=False)
        self._last = -float("inf")
        self._wait = 0.0

    def due(self) -> bool:
        """Whether a redraw may happen now."""
        return time.perf_counter() - self._last >= self._wait

    def done(self, started: float, cost: float) -> None:
        """Record a redraw that began at ``started`` (``time.perf_counter``) and took ``cost`` seconds."""
        self._last = started
        self._wait = max(self.min_interval, cost / self.budget)


class _FollowedRun:
    """The growing series of the run being trained, extended from the history's new rows at every redraw.

    Steps are kept as int32 and values as float64 arrays: plotly sends 1-D arrays of those types as binary
    buffers (int64 would go as a JSON list, element by element).
    """

    def __init__(self, history: History, first_trace: int, metrics: Sequence[str]) -> None:
        self.history = history
        self.first_trace = first_trace
        self.consumed = 0
        self.steps = {metric: np.zeros(0, np.int32) for metric in metrics}
        self.values = {metric: np.zeros(0) for metric in metrics}
        self.errors = {metric: np.zeros(0) for metric in ERROR_METRICS}
        self.changed: set[str] = set()

    def consume(self) -> None:
        """Append the rows logged since the last call (a metric and its error are logged together)."""
        rows = self.history.rows_since(self.consumed)
        self.consumed += len(rows)
        new: dict[str, tuple[list[int], list[float]]] = {}
        errors_by_step: dict[str, dict[int, float]] = {metric: {} for metric in ERROR_METRICS}
        error_of = {error: metric for metric, error in ERROR_METRICS.items()}
        for step, _, metric, value in rows:
            if metric in self.steps:
                steps, values = new.setdefault(metric, ([], []))
                steps.append(step)
                values.append(value)
            elif metric in error_of:
                errors_by_step[error_of[metric]][step] = value
        for metric, (steps, values) in new.items():
            self.steps[metric] = np.concatenate([self.steps[metric], np.asarray(steps, np.int32)])
            self.values[metric] = np.concatenate([self.values[metric], np.asarray(values, float)])
            if metric in self.errors:
                errors = [errors_by_step[metric].get(step, np.nan) for step in steps]
                self.errors[metric] = np.concatenate([self.errors[metric], np.asarray(errors, float)])
            self.changed.add(metric)

    def series(self, metric: str) -> Series:
        return Series(self.steps[metric], self.values[metric], self.errors.get(metric))


class LiveCharts:
    """The dashboard's panels as a live ``FigureWidget``: one followed (training) run plus overlaid runs.

    Args:
        max_points: points kept per curve, ≥ 2.
        min_interval: shortest time between redraws, seconds.
        budget: largest share of the elapsed time spent redrawing, in (0, 1].
        on_redraw: called at every redraw, inside its timing and budget (e.g. a status line's update).
        panels: the panels drawn (default the dashboard's six; ``workbench.viz.dashboard_panels`` adds opt-in rows).

    Attributes:
        figure: the ``plotly.graph_objects.FigureWidget`` to display.
        seconds_drawing: total time spent in redraws (consuming rows and updating traces), seconds.
        redraws: number of redraws.
    """

    def __init__(
        self,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        budget: float = DEFAULT_BUDGET,
        on_redraw: Callable[[], None] | None = None,
        panels: Sequence[Panel] = DASHBOARD_PANELS,
    ) -> None:
        self.max_points = check_int("max_points", max_points, minimum=2)
        self.on_redraw = on_redraw
        self.panels = tuple(panels)
        self.metrics = panel_metrics(self.panels)
        self.throttle = Throttle(min_interval, budget)
        self.figure = fill_width(go.FigureWidget(dashboard_layout(panels=self.panels)))
        self.seconds_drawing = 0.0
        self.redraws = 0
        self._labels: list[str] = []  # every label ever shown, for stable colours
        self._followed: _FollowedRun | None = None
        self._followed_label: str | None = None
        self._lock = threading.RLock()  # the training thread redraws while the kernel's thread adds/removes runs

    @property
    def labels(self) -> list[str]:
        """Labels of the runs on the chart, in drawing order."""
        return list(dict.fromkeys(trace.legendgroup for trace in self.figure.data))

    def color(self, label: str) -> str:
        """The colour of ``label`` (new labels take the next colour of the palette)."""
        if label not in self._labels:
            self._labels.append(label)
        return run_colors(self._labels)[label]

    def colors(self) -> dict[str, str]:
        """Label → colour of the runs on the chart."""
        return {label: self.color(label) for label in self.labels}

    def width(self, label: str) -> float:
        """The line width of ``label`` (narrower for later labels, like ``color``)."""
        self.color(label)
        return run_widths(self._labels)[label]

    def widths(self) -> dict[str, float]:
        """Label → line width of the runs on the chart."""
        return {label: self.width(label) for label in self.labels}

    def show_run(self, label: str, frame: pd.DataFrame) -> None:
        """Overlay a whole history (columns step, epoch, metric, value), replacing a run of the same label."""
        series = history_series(frame, self.metrics)
        traces = run_traces(
            label, self.color(label), series, max_points=self.max_points, panels=self.panels, width=self.width(label)
        )
        with self._lock:
            self.remove_run(label)
            self.figure.add_traces(traces)

    def follow(self, label: str, history: History) -> None:
        """Start drawing ``history`` as it grows, under ``label`` (replacing the previously followed run's traces
        only if they have the same label; call ``remove_run`` to drop them otherwise)."""
        with self._lock:
            self.remove_run(label)
            first = len(self.figure.data)
            traces = run_traces(
                label, self.color(label), {}, max_points=self.max_points, panels=self.panels, width=self.width(label)
            )
            self.figure.add_traces(traces)
            self._followed, self._followed_label = _FollowedRun(history, first, self.metrics), label
            self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> bool:
        """Draw the followed run's new rows if a redraw is due (or ``force``); returns whether it redrew."""
        if self._followed is None or not (force or self.throttle.due()):
            return False
        started = time.perf_counter()
        with self._lock:
            followed = self._followed
            if followed is None:
                return False
            followed.consume()
            if followed.changed:
                with self.figure.batch_update():
                    for metric in followed.changed:
                        trace = self.figure.data[followed.first_trace + self.metrics.index(metric)]
                        series = followed.series(metric)
                        keep = thin_indices(len(series.steps), self.max_points)
                        trace.x, trace.y = series.steps[keep], series.values[keep]
                        trace.update(series_style(metric, series, keep))
                followed.changed.clear()
            if self.on_redraw is not None:
                self.on_redraw()
        cost = time.perf_counter() - started
        self.throttle.done(started, cost)
        self.seconds_drawing += cost
        self.redraws += 1
        return True

    def point_count(self, label: str | None = None) -> int:
        """Points drawn for ``label`` (default: the followed run) over all its curves."""
        label = self._followed_label if label is None else label
        return sum(0 if trace.x is None else len(trace.x) for trace in self.figure.data if trace.legendgroup == label)

    def remove_run(self, label: str) -> None:
        """Drop a run's traces (stop following it if it is the followed run)."""
        with self._lock:
            if label == self._followed_label:
                self._followed, self._followed_label = None, None
            kept = tuple(trace for trace in self.figure.data if trace.legendgroup != label)
            if len(kept) != len(self.figure.data):
                self.figure.data = kept
                if self._followed is not None:
                    self._followed.first_trace = self._first_trace_of(self._followed_label)

    def _first_trace_of(self, label: str | None) -> int:
        return next(index for index, trace in enumerate(self.figure.data) if trace.legendgroup == label)


def replace_figure(widget: go.FigureWidget, figure: go.Figure) -> None:
    """Show ``figure`` in ``widget``: its traces and layout replace the old ones in one update."""
    with widget.batch_update():
        widget.data = ()
        widget.layout = figure.layout
        widget.add_traces(figure.data)
