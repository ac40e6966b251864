"""Plotly figures built from history tables and toy trajectories, and self-contained HTML reports."""

from workbench.viz.curves import METRIC_TITLES, PANELS, logged_panels, metrics_figure, run_colors, summary_table
from workbench.viz.landscape_figures import line_figure, plane_figure
from workbench.viz.report import load_runs, write_report
from workbench.viz.spectrum_figures import spectrum_figure
from workbench.viz.toy_figures import geometry_figure
from workbench.viz.training_figures import OPTIONAL_PANELS, dashboard_panels, training_figure

__all__ = [
    "METRIC_TITLES",
    "OPTIONAL_PANELS",
    "PANELS",
    "dashboard_panels",
    "geometry_figure",
    "line_figure",
    "load_runs",
    "logged_panels",
    "metrics_figure",
    "plane_figure",
    "run_colors",
    "spectrum_figure",
    "summary_table",
    "training_figure",
    "write_report",
]
