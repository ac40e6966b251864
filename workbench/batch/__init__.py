"""Papermill batches: grid files expanded into notebook runs, executed on Dask distributed and resumably, then
collected."""

from workbench.batch.collect import Collection, collect
from workbench.batch.comparison import paired_comparison
from workbench.batch.grid import Grid, RunSpec, load_grid, parse_grid
from workbench.batch.notebook import config_from_parameters
from workbench.batch.runner import BatchSummary, default_workers, run_batch

__all__ = [
    "BatchSummary",
    "Collection",
    "Grid",
    "RunSpec",
    "collect",
    "config_from_parameters",
    "default_workers",
    "load_grid",
    "paired_comparison",
    "parse_grid",
    "run_batch",
]
