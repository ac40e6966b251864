"""Plotly figures of training histories: one line per run, one panel per metric. No training logic here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from workbench.train.history import final_values

# metric name in the history table → panel title (units in brackets)
METRIC_TITLES = {
    "train_loss": "train loss (batch) [nats]",
    "test_loss": "test loss [nats]",
    "train_eval_loss": "train loss (fixed training samples, eval mode) [nats]",
    "train_accuracy": "train accuracy",
    "test_accuracy": "test accuracy",
    "lambda_1": "λ1, top Hessian eigenvalue",
    "trace": "tr(H)",
    "angle_g_v1": "∠(g, v1) [degrees, acute]",
    "alignment_eps_v1": "|cos∠(ε, v1)|",
    "opt_angle_adversarial_eigenvector": "optimizer's ∠(g_adv, v) [degrees]",
    "lr": "learning rate",
    "lambda_1_rate": "λ1 rate ⟨Δθ, ∇λ1⟩ of the probed step [λ1 per step]",
    "lambda_1_change": "observed λ1 change over the probed step",
    "remainder_along": "r along ∇λ1, measured ⟨r, ∇λ1⟩/‖∇λ1‖",
    "remainder_along_taylor": "r along ∇λ1, Taylor ½‖ε‖²cos²∠(ε, v1)‖∇λ1‖",
    "lambda_1_rate_remainder": "λ1 rate of the step direction's r part",
    "lambda_1_rate_second_order": "λ1 rate of the step direction's Hε part",
    "remainder_share": "share of the step direction's λ1 rate from r",
    "lambda_1_gradient_norm": "‖∇λ1‖",
    "adaptive_sharpness": "adaptive sharpness (ASAM-scaled worst case) [nats]",
    "logit_norm": "mean logit norm (probe batch)",
    "weight_norm": "weight norm ‖θ‖",
}
# losses fall over decades: on a log axis the runs' late differences show, on a linear one they all sit at 0
LOG_METRICS = ("train_loss", "test_loss", "train_eval_loss")
RUN_WIDTHS = (3.5, 2.6, 1.9, 1.4, 1.0)  # pixels, by run order
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")  # by run order, for reports
#: Report panels by name. "mechanism" (``TrainConfig.probe_mechanism``) and "scale" are drawn only for runs that
#: logged them (``logged_panels``).
PANELS = {
    "training": ("train_loss", "test_loss", "train_accuracy", "test_accuracy"),
    "curvature": ("lambda_1", "trace"),
    "alignment": ("angle_g_v1", "alignment_eps_v1"),
    "mechanism": ("lambda_1_rate", "lambda_1_change", "remainder_along", "remainder_along_taylor"),
    "scale": ("adaptive_sharpness", "logit_norm", "weight_norm"),
}


def logged_panels(runs: Mapping[str, pd.DataFrame]) -> dict[str, tuple[str, ...]]:
    """The ``PANELS`` with at least one metric some run logged (opt-in probes leave theirs out otherwise)."""
    logged = set().union(*(set(frame.metric.unique()) for frame in runs.values())) if runs else set()
    return {name: metrics for name, metrics in PANELS.items() if logged.intersection(metrics)}


def with_uncertainty(value: float, stderr: float, *, digits: int = 3) -> str:
    """``value ± stderr`` as text, saying so when the estimate cannot be told from zero (|value| < 2 standard
    errors, about 95 % for a normal estimate): a stochastic trace estimate can come out negative by noise alone."""
    if not math.isfinite(value):
        return "–"
    if not math.isfinite(stderr):
        return f"{value:.{digits}g}"
    text = f"{value:.{digits}g} ± {stderr:.2g}"
    return text + " (not distinguishable from 0)" if abs(value) < 2 * stderr else text


def run_colors(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per run label (in the given order)."""
    palette = qualitative.Plotly
    return {label: palette[index % len(palette)] for index, label in enumerate(labels)}


def run_widths(labels: Sequence[str]) -> dict[str, float]:
    """A line width per run label (in the given order), narrower for later runs: drawn in that order, curves that
    coincide (runs that train alike) stay visible as nested lines instead of the last one hiding the others."""
    return {label: RUN_WIDTHS[min(index, len(RUN_WIDTHS) - 1)] for index, label in enumerate(labels)}


def metrics_figure(
    runs: Mapping[str, pd.DataFrame], metrics: Sequence[str], *, title: str = "", columns: int = 2
) -> go.Figure:
    """Panels of ``metrics`` against optimizer step, one line per run, told apart by colour, dash and width (runs
    that train alike draw the same curve: each stays visible).

    Args:
        runs: run label → tidy history (columns step, epoch, metric, value).
        metrics: metric names; panels without data show as empty axes.
        title: figure title.
        columns: panels per row.
    """
    rows = -(-len(metrics) // columns)
    figure = make_subplots(
        rows=rows, cols=columns, subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics], horizontal_spacing=0.1
    )
    lines = run_lines(list(runs))
    for index, metric in enumerate(metrics):
        row, col = divmod(index, columns)
        for label, frame in runs.items():
            series = frame[frame.metric == metric].sort_values("step")
            figure.add_trace(
                go.Scatter(
                    x=series.step,
                    y=series.value,
                    name=label,
                    legendgroup=label,
                    showlegend=index == 0,
                    mode="lines" if len(series) > 30 else "lines+markers",
                    line=lines[label],
                ),
                row=row + 1,
                col=col + 1,
            )
        figure.update_xaxes(title_text="step", row=row + 1, col=col + 1)
        if metric in LOG_METRICS:
            figure.update_yaxes(type="log", row=row + 1, col=col + 1)
    return report_layout(figure, title=title, height=320 * rows + 60)


def run_lines(labels: Sequence[str]) -> dict[str, dict]:
    """A plotly ``line`` per run label, told apart by colour, dash and width: runs that train alike draw the same
    curve, and each stays visible."""
    colors, widths = run_colors(labels), run_widths(labels)
    return {
        label: {"color": colors[label], "width": widths[label], "dash": RUN_DASHES[index % len(RUN_DASHES)]}
        for index, label in enumerate(labels)
    }


def report_layout(figure: go.Figure, *, title: str, height: int) -> go.Figure:
    """The layout every report figure shares: title on the left, the legend above the panels on the right (never
    over an axis title), the mode bar upright at the right edge, the width of the page."""
    figure.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=height,
        template="plotly_white",
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0, "yref": "container", "yanchor": "top"},
        margin={"t": 90, "r": 40},
        modebar={"orientation": "v"},
    )
    for annotation in figure.layout.annotations:
        annotation.font.size = 14
    return figure


def summary_table(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: its steps, its final metrics (test accuracy and loss, λ1, trace) as of its last evaluation
    and that evaluation's step ("final step": earlier than "steps" for a run that diverged or stopped between two
    evaluations; ``workbench.train.history.final_values``), the best test accuracy, and the means of ∠(g, v1) and
    |cos∠(ε, v1)| over the probes."""
    rows = []
    for label, frame in runs.items():

        def values(metric: str, frame: pd.DataFrame = frame) -> pd.Series:
            return frame[frame.metric == metric].sort_values("step").value

        step, final = final_values(frame, ("test_accuracy", "test_loss", "lambda_1", "trace", "trace_stderr"))
        rows.append(
            {
                "run": label,
                "steps": int(frame.step.max()) if len(frame) else 0,
                "final step": step,
                "final test accuracy": final["test_accuracy"],
                "best test accuracy": float(values("test_accuracy").max()),
                "final test loss": final["test_loss"],
                "final λ1": final["lambda_1"],
                "final trace": final["trace"],
                "final trace stderr": final["trace_stderr"],
                "mean ∠(g, v1) [deg]": float(values("angle_g_v1").mean()),
                "mean |cos∠(ε, v1)|": float(values("alignment_eps_v1").mean()),
            }
        )
    return pd.DataFrame(rows)
