"""The batch report: mean ± std over seeds per setting as a table and figures, seed-averaged curves, every run.

One self-contained HTML page (plotly.js inlined once) that opens with no server and no internet.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from workbench.viz.batch_figures import (
    BATCH_METRIC_TITLES,
    CURVE_METRICS,
    seed_curves,
    seed_curves_figure,
    seed_statistics,
    seed_summary_figure,
)

SUMMARY_METRICS = (
    "final_test_accuracy",
    "generalization_gap",
    "final_test_loss",
    "final_lambda_1",
    "mean_lambda_1",
    "final_trace",
    "mean_alignment_eps_v1",
    "mean_angle_g_v1",
    "mean_opt_angle_adversarial_eigenvector",
    "mean_opt_angle_descent_eigenvector",
    "train_seconds",
)
_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
)


def format_statistics(statistics: pd.DataFrame, metrics: Sequence[str], *, by: str = "group") -> pd.DataFrame:
    """``seed_statistics`` as text: one row per group, ``runs`` (the largest count), then "mean ± std" per metric
    titled by ``BATCH_METRIC_TITLES`` ("–" where a metric was never logged, the mean alone for a single run)."""
    table = pd.DataFrame({by: statistics[by]})
    table["runs"] = statistics[[f"{metric}_n" for metric in metrics]].max(axis=1).astype(int)
    for metric in metrics:
        pairs = zip(statistics[f"{metric}_mean"], statistics[f"{metric}_std"], strict=True)
        table[BATCH_METRIC_TITLES.get(metric, metric)] = [_mean_std(mean, std) for mean, std in pairs]
    return table


def statistics_markdown(statistics: pd.DataFrame, metrics: Sequence[str], *, by: str = "group") -> str:
    """``format_statistics`` as a Markdown table (for docs and terminals)."""
    return markdown_table(format_statistics(statistics, metrics, by=by))


def format_comparison(comparison: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``workbench.batch.comparison.paired_comparison`` as text: group, metric title, "mean ± std" of the paired
    difference to ``reference``, seeds where the group is higher ("k / n"), and the paired t-test's p-value."""
    return pd.DataFrame(
        {
            "group": comparison.group,
            "metric": [BATCH_METRIC_TITLES.get(metric, metric) for metric in comparison.metric],
            f"group − {reference} (mean ± std over seeds)": [
                _mean_std(mean, std)
                for mean, std in zip(comparison.mean_difference, comparison.std_difference, strict=True)
            ],
            "seeds where higher": [f"{k} / {n}" for k, n in zip(comparison.higher, comparison.pairs, strict=True)],
            "paired t-test p": [_cell(p) for p in comparison.p_value],
        }
    )


def markdown_table(table: pd.DataFrame) -> str:
    """A text table as Markdown (for docs and terminals)."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    rows = [line(table.columns), "|" + "|".join(["---"] * len(table.columns)) + "|"]
    return "\n".join(rows + [line(row) for row in table.itertuples(index=False)]) + "\n"


def write_batch_report(
    runs: pd.DataFrame,
    histories: pd.DataFrame,
    path: str | Path,
    *,
    counted: pd.DataFrame,
    title: str,
    notes: str = "",
    metrics: Sequence[str] = SUMMARY_METRICS,
    curve_metrics: Sequence[str] = CURVE_METRICS,
    comparison: pd.DataFrame | None = None,
    reference: str | None = None,
) -> Path:
    """Write the report of a batch to ``path``.

    Args:
        runs: one row per run, finished or not: ``group``, ``state``, the ``metrics`` columns and any parameters
            (all shown in the table of every run).
        histories: the stacked histories (``run``, ``group``, step, epoch, metric, value) of the ``counted`` runs.
        counted: the rows of ``runs`` the statistics and figures are over (``workbench.batch.records.counted_runs``:
            the runs that trained to the end).
        title: page title.
        notes: a paragraph under the title (the grid's description, failures).
        metrics: summary metrics in the table and the mean ± std figure.
        curve_metrics: history metrics drawn as seed-averaged curves.
        comparison: ``paired_comparison`` against ``reference``, shown as a table when given.
        reference: the group ``comparison`` compares with.
    """
    path = Path(path)
    finished = counted
    statistics = seed_statistics(finished, metrics)
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    parts.append("<h2>Mean ± std over seeds</h2>")
    parts.append(format_statistics(statistics, metrics).to_html(index=False))
    summary = seed_summary_figure(
        finished, metrics, title="final and mean-over-training values, per run and mean ± std"
    )
    parts.append(summary.to_html(full_html=False, include_plotlyjs=True))
    if comparison is not None and reference is not None:
        parts.append(f"<h2>Paired by seed, against {html.escape(reference)}</h2>")
        parts.append(format_comparison(comparison, reference).to_html(index=False))
    curves = seed_curves_figure(seed_curves(histories, curve_metrics), curve_metrics, title="mean ± std over seeds")
    parts.append("<h2>Over training</h2>")
    parts.append(curves.to_html(full_html=False, include_plotlyjs=False))
    parts.append("<h2>Every run</h2>")
    every_run = runs.map(_cell).to_html(index=False)
    parts.append(f"<div style='overflow-x:auto'>{every_run}</div>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"
