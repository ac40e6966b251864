"""Self-contained HTML reports (plotly.js inlined once) that open in a browser with no server."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from workbench.train.run_folder import RunFolder
from workbench.viz.curves import logged_panels, metrics_figure, summary_table


def load_runs(run_dirs: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Histories of run directories, labelled by directory name (made unique if two share a name).

    Raises:
        ValueError: for a folder without a history.
    """
    runs: dict[str, pd.DataFrame] = {}
    for folder in map(RunFolder, run_dirs):
        history = folder.read_history()
        label = folder.name
        while label in runs:
            label = f"{folder.path.parent.name}/{label}"
        runs[label] = history.to_frame()
    return runs


def write_report(runs: Mapping[str, pd.DataFrame], path: str | Path, *, title: str, notes: str = "") -> Path:
    """Write a comparison report of ``runs`` (label → tidy history) to ``path``, and nothing else.

    The page holds a summary table and the training, curvature and alignment panels, and the mechanism and scale
    panels where the runs logged them (``TrainConfig.probe_mechanism``, the scale probes); it embeds plotly.js once,
    so it needs neither a server nor the internet.
    """
    path = Path(path)
    table = summary_table(runs)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    parts.append(table.to_html(index=False, float_format=lambda value: f"{value:.4g}", na_rep="–"))
    for index, (name, metrics) in enumerate(logged_panels(runs).items()):
        figure = metrics_figure(runs, metrics, title=name)
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
