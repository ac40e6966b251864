"""Plotly figures built from history tables, and self-contained HTML reports."""

from workbench.viz.curves import METRIC_TITLES, PANELS, metrics_figure, run_colors, summary_table
from workbench.viz.report import load_runs, write_report

__all__ = ["METRIC_TITLES", "PANELS", "load_runs", "metrics_figure", "run_colors", "summary_table", "write_report"]
