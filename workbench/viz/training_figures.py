"""The training dashboard's panels as one plotly figure: static (from history tables) or fed live.

Panels: train and test loss, train and test accuracy, λ1, tr(H) (with its standard error as error bars, and in the
hover whether it can be told from zero), ∠(g, v1) and |cos∠(ε, v1)|, against optimizer step; opt-in rows
(``OPTIONAL_PANELS``, chosen with ``dashboard_panels``) add the step decomposition of ``TrainConfig.probe_mechanism``
and the scale probes. Every panel has its axis titles, and all share one step axis (they line up, and a zoom in one
zooms all). Every run is one colour; the second curve of a panel (train loss and accuracy, the observed change of
λ1, the Taylor term, the second-order part) is dotted, the first solid, and the legend shows each run with a solid
line. ``training_figure`` draws whole histories; the live chart (``workbench.ui.charts``) starts from
``dashboard_layout`` and fills the same traces (``run_traces``, ``series_style``) as rows arrive, so both look the
same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench._checks import check_choice
from workbench.viz.curves import METRIC_TITLES, run_colors, run_widths, with_uncertainty


@dataclass(frozen=True)
class Panel:
    """One subplot: its title, its y-axis title and the metrics (history names) drawn in it."""

    title: str
    y_title: str
    metrics: tuple[str, ...]


DASHBOARD_PANELS = (
    Panel("loss (dotted: train batch, solid: test)", "loss [nats]", ("train_loss", "test_loss")),
    Panel("accuracy (dotted: train, solid: test)", "accuracy", ("train_accuracy", "test_accuracy")),
    Panel(METRIC_TITLES["lambda_1"], "λ1", ("lambda_1",)),
    Panel(METRIC_TITLES["trace"] + " (Hutch++) ± standard error", "tr(H)", ("trace",)),
    Panel(METRIC_TITLES["angle_g_v1"], "degrees", ("angle_g_v1",)),
    Panel(METRIC_TITLES["alignment_eps_v1"], "|cos|", ("alignment_eps_v1",)),
)
#: Opt-in rows of three panels, by name: what ``TrainConfig.probe_mechanism`` logs (rates in λ1 units per step;
#: negative: the step flattens) and the scale probes logged with every probe (adaptive sharpness when asked for).
OPTIONAL_PANELS = {
    "mechanism": (
        Panel("λ1 rate ⟨Δθ, ∇λ1⟩ of the probed step; dotted: observed Δλ1", "λ1 per step",
              ("lambda_1_rate", "lambda_1_change")),
        Panel("r along ∇λ1; dotted: Taylor ½‖ε‖²cos²∠(ε, v1)‖∇λ1‖", "⟨r, ∇λ1⟩/‖∇λ1‖",
              ("remainder_along", "remainder_along_taylor")),
        Panel("λ1 rate of the step's r part; dotted: of its Hε part", "λ1 per step",
              ("lambda_1_rate_remainder", "lambda_1_rate_second_order")),
    ),
    "scale": (
        Panel(METRIC_TITLES["adaptive_sharpness"], "nats", ("adaptive_sharpness",)),
        Panel(METRIC_TITLES["logit_norm"], "‖logits‖", ("logit_norm",)),
        Panel(METRIC_TITLES["weight_norm"], "‖θ‖", ("weight_norm",)),
    ),
}  # fmt: skip
DASHBOARD_COLUMNS = 3
#: metric → the metric holding its standard error (drawn as error bars)
ERROR_METRICS = {"trace": "trace_stderr"}
#: the history metrics the default dashboard draws, in trace order
DASHBOARD_METRICS = tuple(metric for panel in DASHBOARD_PANELS for metric in panel.metrics)
TRAIN_METRICS = ("train_loss", "train_accuracy")
#: metrics drawn dotted: the training curves, and the second curve of each opt-in panel
DOTTED_METRICS = (*TRAIN_METRICS, "lambda_1_change", "remainder_along_taylor", "lambda_1_rate_second_order")
LEGEND_METRIC = "test_loss"  # the run's legend entry: a solid curve (train curves are dotted)
PANEL_HEIGHT = 260  # pixels per row of panels


def dashboard_panels(extras: Sequence[str] = ()) -> tuple[Panel, ...]:
    """The default panels followed by the opt-in rows named in ``extras`` (keys of ``OPTIONAL_PANELS``).

    Raises:
        ValueError: naming ``extras`` for an unknown row.
    """
    panels = list(DASHBOARD_PANELS)
    for name in extras:
        panels.extend(OPTIONAL_PANELS[check_choice("extras", name, OPTIONAL_PANELS)])
    return tuple(panels)


def panel_metrics(panels: Sequence[Panel]) -> tuple[str, ...]:
    """The history metrics ``panels`` draw, in trace order (one trace per metric and run)."""
    return tuple(metric for panel in panels for metric in panel.metrics)


@dataclass(frozen=True)
class Series:
    """One metric of one run: ``steps`` ``(m,)`` int32 (a binary array for plotly; int64 goes as a JSON list),
    ``values`` ``(m,)`` float64 and optional ``errors`` ``(m,)``."""

    steps: np.ndarray
    values: np.ndarray
    errors: np.ndarray | None = None


def dashboard_layout(*, title: str = "", panels: Sequence[Panel] = DASHBOARD_PANELS) -> go.Figure:
    """The empty panel grid (titles, axes, size) that every dashboard figure with ``panels`` starts from."""
    rows = -(-len(panels) // DASHBOARD_COLUMNS)
    figure = make_subplots(
        rows=rows,
        cols=DASHBOARD_COLUMNS,
        subplot_titles=[panel.title for panel in panels],
        horizontal_spacing=0.07,
        vertical_spacing=0.16 * 2 / max(rows, 2),
    )
    for index, panel in enumerate(panels):
        row, col = divmod(index, DASHBOARD_COLUMNS)
        figure.update_xaxes(title_text="step", row=row + 1, col=col + 1)
        figure.update_yaxes(title_text=panel.y_title, title_standoff=4, row=row + 1, col=col + 1)
    figure.update_xaxes(matches="x", rangemode="tozero")  # one step axis: the panels line up before any probe
    figure.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=PANEL_HEIGHT * rows + 90,
        template="plotly_white",
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0, "yref": "container", "yanchor": "top"},
        margin={"t": 90 if title else 70, "b": 50, "l": 60, "r": 40},
        modebar={"orientation": "v"},  # at the right edge, clear of the legend and the title
        uirevision="dashboard",  # keep the user's zoom while data streams in
    )
    for annotation in figure.layout.annotations:
        annotation.font.size = 14
    return figure


def series_style(metric: str, series: Series, keep: np.ndarray) -> dict:
    """The properties of a metric's trace that come with its points (``keep`` of them): for a metric with errors,
    error bars and a hover that says value ± error and whether the value can be told from zero."""
    if series.errors is None:
        return {}
    values, errors = series.values[keep], series.errors[keep]
    texts = [with_uncertainty(value, error) for value, error in zip(values.tolist(), errors.tolist(), strict=True)]
    return {"error_y": {"type": "data", "array": errors, "thickness": 1}, "customdata": texts}


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


def run_traces(
    label: str,
    color: str,
    series: Mapping[str, Series],
    *,
    max_points: int,
    panels: Sequence[Panel] = DASHBOARD_PANELS,
    width: float = 1.5,
) -> list[go.Scatter]:
    """The run's traces, one per metric of ``panel_metrics(panels)`` in that order (empty where it has no data).

    Long series are thinned to ``max_points`` evenly spaced points; the legend shows the run once; ``width``:
    its lines' (``workbench.viz.run_widths``).
    """
    traces = []
    for panel_index, panel in enumerate(panels):
        axis = "" if panel_index == 0 else str(panel_index + 1)
        for metric in panel.metrics:
            data = series.get(metric, Series(np.zeros(0, np.int32), np.zeros(0), _empty_errors(metric)))
            keep = thin_indices(len(data.steps), max_points)
            value = "%{customdata}" if metric in ERROR_METRICS else "%{y:.4g}"
            traces.append(
                go.Scatter(
                    x=data.steps[keep],
                    y=data.values[keep],
                    name=label,
                    legendgroup=label,
                    showlegend=metric == LEGEND_METRIC,
                    mode="lines+markers" if metric not in TRAIN_METRICS else "lines",
                    marker={"size": 4},
                    line={"color": color, "dash": "dot" if metric in DOTTED_METRICS else "solid", "width": width},
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                    hovertemplate=f"{label}<br>{METRIC_TITLES.get(metric, metric)}: {value}<br>"
                    "step %{x}<extra></extra>",
                    **series_style(metric, data, keep),
                )
            )
    return traces


def _empty_errors(metric: str) -> np.ndarray | None:
    return np.zeros(0) if metric in ERROR_METRICS else None


def history_series(frame: pd.DataFrame, metrics: Sequence[str] = DASHBOARD_METRICS) -> dict[str, Series]:
    """``metrics`` of one tidy history (columns step, epoch, metric, value), ordered by step."""
    series = {}
    for metric in metrics:
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
    panels: Sequence[Panel] = DASHBOARD_PANELS,
    widths: Mapping[str, float] | None = None,
) -> go.Figure:
    """The dashboard's panels for whole histories, one colour per run.

    Args:
        runs: run label → tidy history (columns step, epoch, metric, value).
        title: figure title.
        max_points: points kept per curve (evenly thinned beyond it).
        colors: run label → colour (default: ``workbench.viz.run_colors`` in the order of ``runs``).
        panels: the panels to draw (default the six of the dashboard; ``dashboard_panels(["mechanism"])`` adds a
            row).
        widths: run label → line width (default: ``workbench.viz.run_widths`` in the order of ``runs``).
    """
    figure = dashboard_layout(title=title, panels=panels)
    colors = {**run_colors(list(runs)), **(colors or {})}
    widths = {**run_widths(list(runs)), **(widths or {})}
    metrics = panel_metrics(panels)
    for label, frame in runs.items():
        series = history_series(frame, metrics)
        figure.add_traces(
            run_traces(label, colors[label], series, max_points=max_points, panels=panels, width=widths[label])
        )
    return figure
