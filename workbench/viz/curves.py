"""Plotly figures of training histories: one line per run, one panel per metric. No training logic here."""

from __future__ import annotations

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


def run_colors(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per run label (in the given order)."""
    palette = qualitative.Plotly
    return {label: palette[index % len(palette)] for index, label in enumerate(labels)}


def metrics_figure(
    runs: Mapping[str, pd.DataFrame], metrics: Sequence[str], *, title: str = "", columns: int = 2
) -> go.Figure:
    """Panels of ``metrics`` against optimizer step, one coloured line per run.

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
    colors = run_colors(list(runs))
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
                    line={"color": colors[label]},
                ),
                row=row + 1,
                col=col + 1,
            )
        figure.update_xaxes(title_text="step", row=row + 1, col=col + 1)
    figure.update_layout(title=title, height=320 * rows, template="plotly_white", legend={"orientation": "h"})
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

        step, final = final_values(frame, ("test_accuracy", "test_loss", "lambda_1", "trace"))
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
                "mean ∠(g, v1) [deg]": float(values("angle_g_v1").mean()),
                "mean |cos∠(ε, v1)|": float(values("alignment_eps_v1").mean()),
            }
        )
    return pd.DataFrame(rows)
