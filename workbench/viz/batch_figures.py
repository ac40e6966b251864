"""Batch comparisons over seeds: statistics per setting, points with error bars, and seed-averaged curves.

Inputs are tidy tables: ``runs`` has one row per run with a ``group`` column (the setting a run repeats, e.g.
the optimizer) and one column per summary metric; ``histories`` stacks the runs' histories with ``run`` and
``group`` columns (step, epoch, metric, value). No training logic here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.curves import METRIC_TITLES, report_layout, run_colors, run_lines

# summary metric of a run (workbench.batch.records.run_metrics) → axis title, units in brackets
BATCH_METRIC_TITLES = {
    "final_test_accuracy": "final test accuracy",
    "best_test_accuracy": "best test accuracy",
    "final_train_accuracy": "final train accuracy",
    "generalization_gap": "generalization gap (train − test accuracy)",
    "final_test_loss": "final test loss [nats]",
    "final_lambda_1": "final λ1",
    "mean_lambda_1": "mean λ1 over training",
    "final_trace": "final tr(H)",
    "final_adaptive_sharpness": "final adaptive sharpness [nats]",
    "final_weight_norm": "final ‖θ‖",
    "final_logit_norm": "final mean logit norm",
    "mean_alignment_eps_v1": "mean |cos∠(ε, v1)|",
    "mean_angle_g_v1": "mean ∠(g, v1) [degrees]",
    "mean_angle_probe_gradient_v1": "mean ∠(probe-batch g, v1) [degrees]",
    "mean_opt_angle_gradient_eigenvector": "mean ∠(g, v), optimizer's v [degrees, acute]",
    "mean_opt_angle_adversarial_eigenvector": "mean ∠(g_adv, v), optimizer's v [degrees, acute]",
    "mean_opt_angle_descent_eigenvector": "mean ∠(descent, v), optimizer's v [degrees, acute]",
    "train_seconds": "training time [s]",
    "final_train_eval_loss": "final train loss (fixed samples) [nats]",
    # the λ1-mechanism study's per-run metrics (workbench.batch.mechanism.mechanism_metrics)
    "mean_rate_per_lr": "mean ⟨Δθ, ∇λ1⟩ / lr",
    "rate_change_correlation": "corr(⟨Δθ, ∇λ1⟩, observed Δλ1)",
    "rate_change_slope": "slope of observed Δλ1 on ⟨Δθ, ∇λ1⟩",
    "remainder_share": "share of the direction's λ1 rate from r",
    "remainder_share_of_sam_part": "r's share of the Hε + r part",
    "mean_remainder_normalized": "mean κ",
    "mean_alignment_squared": "mean cos²∠(ε, v1)",
    "taylor_share": "Taylor share (mean cos² / mean κ)",
    "taylor_slope": "κ = a·cos² + b: a",
    "taylor_intercept": "κ = a·cos² + b: b",
    "taylor_correlation": "corr(κ, cos²)",
}
CURVE_METRICS = ("test_accuracy", "train_accuracy", "lambda_1", "trace", "alignment_eps_v1", "angle_g_v1")


def seed_statistics(runs: pd.DataFrame, metrics: Sequence[str], *, by: str = "group") -> pd.DataFrame:
    """Mean, sample standard deviation and count of each metric per group, groups in order of appearance.

    Returns a frame with column ``by``, then ``<metric>_mean``, ``<metric>_std`` and ``<metric>_n`` per metric
    (NaN values, e.g. SGD's alignment, are left out of the count; the std of one value is NaN).
    """
    grouped = runs.groupby(by, sort=False)[list(metrics)]
    table = grouped.agg(["mean", "std", "count"])
    table.columns = [f"{metric}_{'n' if stat == 'count' else stat}" for metric, stat in table.columns]
    return table.reset_index()


def seed_curves(histories: pd.DataFrame, metrics: Sequence[str] = CURVE_METRICS) -> pd.DataFrame:
    """Per group, metric and step: the mean, sample std and count of the value over the group's runs.

    Returns columns group, metric, step, mean, std, n (groups in order of appearance).
    """
    rows = histories[histories.metric.isin(metrics)]
    curves = rows.groupby(["group", "metric", "step"], sort=False).value.agg(["mean", "std", "count"])
    return curves.rename(columns={"count": "n"}).reset_index()


def seed_summary_figure(
    runs: pd.DataFrame, metrics: Sequence[str], *, title: str = "", columns: int = 3, by: str = "group"
) -> go.Figure:
    """One panel per metric: each group's runs as faint dots and their mean ± std as a marker with error bars."""
    groups = list(dict.fromkeys(runs[by]))
    colors = run_colors(groups)
    statistics = seed_statistics(runs, metrics, by=by).set_index(by)
    rows = -(-len(metrics) // columns)
    figure = make_subplots(
        rows=rows, cols=columns, subplot_titles=[BATCH_METRIC_TITLES.get(m, m) for m in metrics], vertical_spacing=0.14
    )
    for index, metric in enumerate(metrics):
        row, col = divmod(index, columns)
        for group in groups:
            values = runs.loc[runs[by] == group, metric]
            figure.add_trace(
                go.Scatter(
                    x=[group] * len(values),
                    y=values,
                    mode="markers",
                    marker={"color": colors[group], "size": 5, "opacity": 0.35},
                    name=f"{group} (runs)",
                    legendgroup=group,
                    showlegend=False,
                    hovertemplate=f"{group}<br>%{{y:.4g}}<extra></extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
            mean, std, count = (statistics.loc[group, f"{metric}_{stat}"] for stat in ("mean", "std", "n"))
            figure.add_trace(
                go.Scatter(
                    x=[group],
                    y=[mean],
                    error_y={"type": "data", "array": [std], "visible": True},
                    mode="markers",
                    marker={"color": colors[group], "size": 11, "symbol": "diamond"},
                    name=group,
                    legendgroup=group,
                    showlegend=index == 0,
                    hovertemplate=f"{group}: %{{y:.4g}} ± {std:.2g} over {count} runs<extra></extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
    return report_layout(figure, title=title, height=330 * rows + 60)


def seed_curves_figure(curves: pd.DataFrame, metrics: Sequence[str], *, title: str = "", columns: int = 2) -> go.Figure:
    """One panel per metric against optimizer step: each group's mean over its runs, with a ± std band.

    Args:
        curves: the output of ``seed_curves``.
        metrics: history metric names (``METRIC_TITLES`` gives the panel titles).
    """
    groups = list(dict.fromkeys(curves.group))
    colors, lines = run_colors(groups), run_lines(groups)
    rows = -(-len(metrics) // columns)
    figure = make_subplots(
        rows=rows, cols=columns, subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics], horizontal_spacing=0.1
    )
    for index, metric in enumerate(metrics):
        row, col = divmod(index, columns)
        for group in groups:
            series = curves[(curves.group == group) & (curves.metric == metric)].sort_values("step")
            spread = series["std"].fillna(0.0)
            band_x = pd.concat([series.step, series.step[::-1]])
            band_y = pd.concat([series["mean"] + spread, (series["mean"] - spread)[::-1]])
            figure.add_trace(
                go.Scatter(
                    x=band_x,
                    y=band_y,
                    fill="toself",
                    fillcolor=colors[group],
                    opacity=0.15,
                    line={"width": 0},
                    hoverinfo="skip",
                    legendgroup=group,
                    showlegend=False,
                ),
                row=row + 1,
                col=col + 1,
            )
            figure.add_trace(
                go.Scatter(
                    x=series.step,
                    y=series["mean"],
                    mode="lines",
                    line=lines[group],
                    name=group,
                    legendgroup=group,
                    showlegend=index == 0,
                ),
                row=row + 1,
                col=col + 1,
            )
        figure.update_xaxes(title_text="step", row=row + 1, col=col + 1)
    return report_layout(figure, title=title, height=320 * rows + 60)
