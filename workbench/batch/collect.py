"""Gather a batch folder into one table of runs, statistics over seeds, and the HTML comparison report.

Files written into the batch folder:
    results.parquet, results.csv   one row per run: name, group, state, metrics (``run_metrics``), timings, and
                                   its full TrainConfig (dict and list values as JSON text)
    histories.parquet              the finished runs' histories stacked, with ``run`` and ``group`` columns
    summary.csv, summary.md        mean, std and count over seeds per group (finished runs)
    comparison.csv, comparison.md  with a ``reference`` group: every other group against it, paired by seed
                                   (``workbench.batch.comparison.paired_comparison``)
    report.html                    ``workbench.viz.batch_report.write_batch_report``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.batch.comparison import paired_comparison
from workbench.batch.records import (
    ERROR_FILE,
    FINISHED,
    PARAMS_FILE,
    RESULT_FILE,
    run_metrics,
    run_state,
)
from workbench.jsonfiles import read_json
from workbench.train import TrainConfig
from workbench.train.run_folder import RunFolder
from workbench.viz.batch_figures import seed_statistics
from workbench.viz.batch_report import (
    SUMMARY_METRICS,
    format_comparison,
    markdown_table,
    statistics_markdown,
    write_batch_report,
)


@dataclass(frozen=True)
class Collection:
    """A collected batch: ``runs`` (one row per run), ``statistics`` (per group, over the finished runs' seeds;
    see ``seed_statistics``), ``comparison`` (``paired_comparison`` against the reference group; None without
    one) and the paths of the files written, by name."""

    runs: pd.DataFrame
    statistics: pd.DataFrame
    comparison: pd.DataFrame | None
    files: dict[str, Path]


def collect(output: str | Path, *, title: str | None = None, reference: str | None = None) -> Collection:
    """Collect every run folder of ``output`` (finished or not) and write the tables and the report there.

    Args:
        output: the batch folder.
        title: the report's title (default: "Batch <folder name>").
        reference: a group to compare every other group with, paired by seed (None: no paired comparison).

    Raises:
        ValueError: when ``output`` holds no run folders (none with a params.json), or naming ``reference`` when
            no finished run belongs to that group.
    """
    output = Path(output)
    specs = [read_json(path) | {"folder": path.parent} for path in output.glob(f"*/{PARAMS_FILE}")]
    if not specs:
        raise ValueError(f"{output} holds no batch runs (no */{PARAMS_FILE}); run `workbench batch run` first")
    specs.sort(key=lambda spec: (str(spec.get("grid")), spec["index"], spec["name"]))
    runs = pd.DataFrame([_row(spec) for spec in specs])
    finished = runs[runs.state == FINISHED]
    histories = pd.concat(
        [_history(spec) for spec, state in zip(specs, runs.state, strict=True) if state == FINISHED] or [_empty()]
    )
    statistics = seed_statistics(finished, SUMMARY_METRICS)
    comparison = None if reference is None else paired_comparison(finished, SUMMARY_METRICS, reference=reference)
    files = {
        "results.parquet": output / "results.parquet",
        "results.csv": output / "results.csv",
        "histories.parquet": output / "histories.parquet",
        "summary.csv": output / "summary.csv",
        "summary.md": output / "summary.md",
    }
    runs.to_parquet(files["results.parquet"], index=False)
    runs.to_csv(files["results.csv"], index=False)
    histories.to_parquet(files["histories.parquet"], index=False)
    statistics.to_csv(files["summary.csv"], index=False)
    files["summary.md"].write_text(statistics_markdown(statistics, SUMMARY_METRICS))
    if comparison is not None:
        files["comparison.csv"] = output / "comparison.csv"
        files["comparison.md"] = output / "comparison.md"
        comparison.to_csv(files["comparison.csv"], index=False)
        files["comparison.md"].write_text(markdown_table(format_comparison(comparison, reference)))
    notes = _notes(specs, runs)
    files["report.html"] = write_batch_report(
        runs,
        histories,
        output / "report.html",
        title=title or f"Batch {output.resolve().name}",
        notes=notes,
        comparison=comparison,
        reference=reference,
    )
    return Collection(runs, statistics, comparison, files)


def _row(spec: dict[str, Any]) -> dict[str, Any]:
    folder: Path = spec["folder"]
    state = run_state(folder)
    result = read_json(folder / RESULT_FILE) if state == FINISHED else None
    error = read_json(folder / ERROR_FILE) if state != FINISHED else None
    config = result["config"] if result is not None else TrainConfig.from_dict(spec["options"]).to_dict()
    metrics = result["metrics"] if result is not None else run_metrics(_empty())  # NaN for unfinished runs
    identity = {
        "run": spec["name"],
        "group": spec["group"],
        "variant": spec["variant"],
        "state": state,
        "train_status": None if result is None else result["train_status"],
        "error": None if error is None else f"{error.get('error')}: {error.get('message')}",
        "seconds": None if result is None else result["seconds"],
        "train_seconds": None if result is None else result["train_seconds"],
    }
    parameters = {
        name: json.dumps(value) if isinstance(value, dict | list) else value for name, value in config.items()
    }
    return {**identity, **{name: _number(value) for name, value in metrics.items()}, **parameters}


def _history(spec: dict[str, Any]) -> pd.DataFrame:
    frame = RunFolder(spec["folder"]).read_history().to_frame()
    return frame.assign(run=spec["name"], group=spec["group"])


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": [], "epoch": [], "metric": [], "value": [], "run": [], "group": []})


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _notes(specs: list[dict[str, Any]], runs: pd.DataFrame) -> str:
    descriptions = list(dict.fromkeys(spec.get("description") or "" for spec in specs))
    counts = runs.state.value_counts()
    states = ", ".join(f"{counts[state]} {state}" for state in counts.index)
    return " ".join([*filter(None, descriptions), f"Runs: {states}; statistics over the finished runs."])
