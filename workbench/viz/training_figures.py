"""The training dashboard's six panels as one plotly figure: static (from history tables) or fed live.

Panels: train and test loss, train and test accuracy, λ1, tr(H) (with its standard error as error bars),
∠(g, v1) and |cos∠(ε, v1)|, against optimizer step. Every run is one colour; train curves are dotted, test
curves solid. ``training_figure`` draws whole histories; the live chart (``workbench.ui.charts``) starts from
``dashboard_layout`` and fills the same traces (``run_traces``) as rows arrive, so both look the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.curves import METRIC_TITLES, run_colors


@dataclass(frozen=True)
class Panel:
    """One subplot: its title and the metrics (history names) drawn in it."""

    title: str
    metrics: tuple[str, ...]


DASHBOARD_PANELS = (
    Panel("loss [nats] (dotted: train batch, solid: test)", ("train_loss", "test_loss")),
    Panel("accuracy (dotted: train, solid: test)", ("train_accuracy", "test_accuracy")),
    Panel(METRIC_TITLES["lambda_1"], ("lambda_1",)),
    Panel(METRIC_TITLES["trace"] + " ± standard error", ("trace",)),
    Panel(METRIC_TITLES["angle_g_v1"], ("angle_g_v1",)),
    Panel(METRIC_TITLES["alignment_eps_v1"], ("alignment_eps_v1",)),
)
DASHBOARD_COLUMNS = 3
#: metric → the metric holding its standard error (drawn as error bars)
ERROR_METRICS = {"trace": "trace_stderr"}
#: the history metrics the dashboard draws, in trace order, and the error metrics they need
DASHBOARD_METRICS = tuple(metric for panel in DASHBOARD_PANELS for metric in panel.metrics)
TRAIN_METRICS = ("train_loss", "train_accuracy")
PANEL_HEIGHT = 260  # pixels per row of panels


@dataclass(frozen=True)
class Series:
    """One metric of one run: ``steps`` ``(m,)`` int32 (a binary array for plotly; int64 goes as a JSON list),
    ``values`` ``(m,)`` float64 and optional ``errors`` ``(m,)``."""

    steps: np.ndarray
    values: np.ndarray
    errors: np.ndarray | None = None


def dashboard_layout(*, title: str = "") -> go.Figure:
    """The empty panel grid (titles, axes, size) that every dashboard figure starts from."""
    rows = -(-len(DASHBOARD_PANELS) // DASHBOARD_COLUMNS)
    figure = make_subplots(
        rows=rows,
        cols=DASHBOARD_COLUMNS,
        subplot_titles=[panel.title for panel in DASHBOARD_PANELS],
        horizontal_spacing=0.07,
        vertical_spacing=0.16,
    )
    for index in range(len(DASHBOARD_PANELS)):
        row, col = divmod(index, DASHBOARD_COLUMNS)
        figure.update_xaxes(title_text="step", row=row + 1, col=col + 1)
    figure.update_layout(
        title=title,
        height=PANEL_HEIGHT * rows + 60,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.12},
        margin={"t": 60, "b": 40, "l": 50, "r": 20},
        uirevision="dashboard",  # keep the user's zoom while data streams in
    )
    for annotation in figure.layout.annotations:
        annotation.font.size = 12
    return figure


def thin_indices(count: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced indices into ``count`` points, always the first and the last.

    Raises:
        ValueError: for ``max_points`` < 2.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points}")
    if count <= max_points:
        return np.arange(count)
    # spacing (count - 1) / (max_points - 1) > 1, so the rounded positions are already strictly increasing
    return np.linspace(0, count - 1, max_points).round().astype(np.int64)


def run_traces(label: str, color: str, series: Mapping[str, Series], *, max_points: int) -> list[go.Scatter]:
    """The run's traces, one per metric of ``DASHBOARD_METRICS`` in that order (empty where it has no data).

    Long series are thinned to ``max_points`` evenly spaced points; the legend shows the run once.
    """
    traces = []
    for panel_index, panel in enumerate(DASHBOARD_PANELS):
        axis = "" if panel_index == 0 else str(panel_index + 1)
        for metric in panel.metrics:
            data = series.get(metric, Series(np.zeros(0, np.int32), np.zeros(0)))
            keep = thin_indices(len(data.steps), max_points)
            error = None if data.errors is None else {"type": "data", "array": data.errors[keep], "thickness": 1}
            traces.append(
                go.Scatter(
                    x=data.steps[keep],
                    y=data.values[keep],
                    error_y=error,
                    name=label,
                    legendgroup=label,
                    showlegend=len(traces) == 0,
                    mode="lines+markers" if metric not in TRAIN_METRICS else "lines",
                    marker={"size": 4},
                    line={"color": color, "dash": "dot" if metric in TRAIN_METRICS else "solid", "width": 1.5},
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                    hovertemplate=f"{label}<br>{METRIC_TITLES.get(metric, metric)}: %{{y:.4g}}<br>"
                    "step %{x}<extra></extra>",
                )
            )
    return traces


def history_series(frame: pd.DataFrame) -> dict[str, Series]:
    """The dashboard's metrics of one tidy history (columns step, epoch, metric, value), ordered by step."""
    series = {}
    for metric in DASHBOARD_METRICS:
        rows = frame[frame.metric == metric].sort_values("step")
        if rows.empty:
            continue
        errors = None
        if metric in ERROR_METRICS:
            error_rows = frame[frame.metric == ERROR_METRICS[metric]].set_index("step").value
            errors = error_rows.reindex(rows.step).to_numpy(dtype=float)
        series[metric] = Series(rows.step.to_numpy(dtype=np.int32), rows.value.to_numpy(dtype=float), errors)
    return series


def training_figure(
    runs: Mapping[str, pd.DataFrame],
    *,
    title: str = "",
    max_points: int = 2000,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """The dashboard's panels for whole histories, one colour per run.

    Args:
        runs: run label → tidy history (columns step, epoch, metric, value).
        title: figure title.
        max_points: points kept per curve (evenly thinned beyond it).
        colors: run label → colour (default: ``workbench.viz.run_colors`` in the order of ``runs``).
    """
    figure = dashboard_layout(title=title)
    colors = {**run_colors(list(runs)), **(colors or {})}
    for label, frame in runs.items():
        figure.add_traces(run_traces(label, colors[label], history_series(frame), max_points=max_points))
    return figure
