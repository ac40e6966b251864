"""Gather a batch folder into one table of runs, statistics over seeds, and the HTML comparison report.

Files written into the batch folder:
    results.parquet, results.csv   one row per run: name, group, state, metrics (``run_metrics``), timings, and
                                   its full TrainConfig (dict and list values as JSON text)
    histories.parquet              the finished runs' histories stacked, with ``run`` and ``group`` columns
    summary.csv, summary.md        mean, std and count over seeds per group (runs whose training finished; a
                                   diverged run is named below the table instead)
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
    FAILED,
    FINISHED,
    PARAMS_FILE,
    RESULT_FILE,
    UNREADABLE,
    counted_runs,
    run_metrics,
    run_state,
    unreadable_reason,
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

PARAMS_KEYS = ("name", "group", "variant", "options", "index")  # what collect reads from params.json
RESULT_KEYS = ("train_status", "seconds", "train_seconds", "config", "metrics")  # and from result.json


@dataclass(frozen=True)
class Collection:
    """A collected batch: ``runs`` (one row per run), ``statistics`` (per group, over the runs that trained to the
    end; see ``seed_statistics`` and ``counted_runs``), ``comparison`` (``paired_comparison`` against the reference
    group; None without one), the paths of the files written, by name, and ``problems``: one line per run whose
    files could not be read (naming the file; the run is in ``runs`` with state "unreadable")."""

    runs: pd.DataFrame
    statistics: pd.DataFrame
    comparison: pd.DataFrame | None
    files: dict[str, Path]
    problems: tuple[str, ...] = ()


def collect(output: str | Path, *, title: str | None = None, reference: str | None = None) -> Collection:
    """Collect every run folder of ``output`` (finished or not) and write the tables and the report there.

    A run whose files cannot be read (a damaged params.json or result.json, a finished run without its history)
    does not stop the others: it gets a row with state "unreadable" and its error, and a line in ``problems``.
    Runs that finished but whose training diverged keep their rows (with ``train_status``) and are left out of the
    statistics and the paired comparison (``counted_runs``); the notes and summary.md name them.

    Args:
        output: the batch folder.
        title: the report's title (default: "Batch <folder name>").
        reference: a group to compare every other group with, paired by seed (None: no paired comparison).

    Raises:
        ValueError: when ``output`` holds no run folders (none with a params.json), or naming ``reference`` when
            no counted run belongs to that group.
    """
    output = Path(output)
    paths = sorted(output.glob(f"*/{PARAMS_FILE}"))
    if not paths:
        raise ValueError(f"{output} holds no batch runs (no */{PARAMS_FILE}); run `workbench batch run` first")
    read = sorted((_read_run(path.parent) for path in paths), key=lambda run: run.order)
    rows = [run.row for run in read]
    runs = pd.DataFrame(rows)
    counted = counted_runs(runs)
    histories = {run.row["run"]: run.history for run in read if run.history is not None}
    all_histories = pd.concat(list(histories.values()) or [_empty()])
    counted_histories = pd.concat([histories[name] for name in counted.run] or [_empty()])
    statistics = seed_statistics(counted, SUMMARY_METRICS)
    comparison = None if reference is None else paired_comparison(counted, SUMMARY_METRICS, reference=reference)
    files = {
        "results.parquet": output / "results.parquet",
        "results.csv": output / "results.csv",
        "histories.parquet": output / "histories.parquet",
        "summary.csv": output / "summary.csv",
        "summary.md": output / "summary.md",
    }
    runs.to_parquet(files["results.parquet"], index=False)
    runs.to_csv(files["results.csv"], index=False)
    all_histories.to_parquet(files["histories.parquet"], index=False)
    statistics.to_csv(files["summary.csv"], index=False)
    left_out = _left_out(runs, counted)
    files["summary.md"].write_text(statistics_markdown(statistics, SUMMARY_METRICS) + left_out)
    if comparison is not None:
        files["comparison.csv"] = output / "comparison.csv"
        files["comparison.md"] = output / "comparison.md"
        comparison.to_csv(files["comparison.csv"], index=False)
        files["comparison.md"].write_text(markdown_table(format_comparison(comparison, reference)))
    descriptions = [run.description for run in read]
    files["report.html"] = write_batch_report(
        runs,
        counted_histories,
        output / "report.html",
        counted=counted,
        title=title or f"Batch {output.resolve().name}",
        notes=_notes(descriptions, runs, left_out),
        comparison=comparison,
        reference=reference,
    )
    problems = tuple(f"{row['run']}: {row['error']}" for row in rows if row["state"] == UNREADABLE)
    return Collection(runs, statistics, comparison, files, problems)


@dataclass(frozen=True)
class _ReadRun:
    """One run folder as read: its place in the grid, its row, its history (finished runs) and description."""

    order: tuple[bool, str, int, str]
    row: dict[str, Any]
    history: pd.DataFrame | None
    description: str


def _read_run(folder: Path) -> _ReadRun:
    """A run folder's row and history; one whose files cannot be read gets a row with state "unreadable" and the
    error, naming the file (sorted after the readable runs)."""
    try:
        spec = _read_params(folder / PARAMS_FILE)
        row = _row(spec, folder)
        history = None
        if row["state"] == FINISHED:
            history = RunFolder(folder).read_history().to_frame().assign(run=spec["name"], group=spec["group"])
        order = (False, str(spec.get("grid")), int(spec["index"]), str(spec["name"]))
        return _ReadRun(order, row, history, str(spec.get("description") or ""))
    except ValueError as error:
        row = {"run": folder.name, "group": None, "variant": None, "state": UNREADABLE, "train_status": None,
               "error": str(error), "seconds": None, "train_seconds": None}  # fmt: skip
        return _ReadRun((True, "", 0, folder.name), row, None, "")


def _read_params(path: Path) -> dict[str, Any]:
    spec = read_json(path)
    missing = sorted(set(PARAMS_KEYS) - set(spec)) if isinstance(spec, dict) else list(PARAMS_KEYS)
    if missing:
        raise ValueError(f"{path} is not a batch run's parameters: it lacks {', '.join(missing)}")
    if not isinstance(spec["options"], dict):
        raise ValueError(f"{path}: options must be a mapping, got {type(spec['options']).__name__}")
    return spec


def _row(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    state = run_state(folder)
    if state == UNREADABLE:
        raise ValueError(unreadable_reason(folder))
    result = _read_result(folder / RESULT_FILE) if state == FINISHED else None
    error = _read_error(folder / ERROR_FILE) if state == FAILED else None
    config = result["config"] if result is not None else TrainConfig.from_dict(spec["options"]).to_dict()
    metrics = result["metrics"] if result is not None else run_metrics(_empty())  # NaN for unfinished runs
    identity = {
        "run": spec["name"],
        "group": spec["group"],
        "variant": spec["variant"],
        "state": state,
        "train_status": None if result is None else result["train_status"],
        "error": error,
        "seconds": None if result is None else result["seconds"],
        "train_seconds": None if result is None else result["train_seconds"],
    }
    parameters = {
        name: json.dumps(value) if isinstance(value, dict | list) else value for name, value in config.items()
    }
    return {**identity, **{name: _number(value) for name, value in metrics.items()}, **parameters}


def _read_result(path: Path) -> dict[str, Any]:
    result = read_json(path)
    missing = sorted(set(RESULT_KEYS) - set(result))
    if missing:
        raise ValueError(f"{path} is not a finished run's result: it lacks {', '.join(missing)}")
    if not isinstance(result["config"], dict) or not isinstance(result["metrics"], dict):
        raise ValueError(f"{path}: config and metrics must be mappings")
    return result


def _read_error(path: Path) -> str:
    try:
        error = read_json(path)
    except ValueError as problem:
        return str(problem)
    if not isinstance(error, dict):
        return f"{path} holds a {type(error).__name__}, not a mapping"
    return f"{error.get('error')}: {error.get('message')}"


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": [], "epoch": [], "metric": [], "value": [], "run": [], "group": []})


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _left_out(runs: pd.DataFrame, counted: pd.DataFrame) -> str:
    """A line naming the finished runs left out of the statistics (a diverged run), or ""."""
    finished = runs[runs.state == FINISHED]
    left = finished[~finished.run.isin(counted.run)]
    if left.empty:
        return ""
    names = ", ".join(f"{run} ({status})" for run, status in zip(left.run, left.train_status, strict=True))
    return f"\nLeft out of the statistics (training did not finish; final metrics from an earlier step): {names}\n"


def _notes(descriptions: list[str], runs: pd.DataFrame, left_out: str) -> str:
    counts = runs.state.value_counts()
    states = ", ".join(f"{counts[state]} {state}" for state in counts.index)
    parts = [*filter(None, dict.fromkeys(descriptions)), f"Runs: {states}; statistics over the runs whose training "
             "finished.", left_out.strip()]  # fmt: skip
    return " ".join(filter(None, parts))
