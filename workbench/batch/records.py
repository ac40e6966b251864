"""A run folder's files and what they say about the run: written atomically, read back to decide what to re-run.

Layout of ``OUTPUT/<run name>/``:
    params.json       the run (``RunSpec.to_dict()``) and the notebook it executes; written before it starts
    <notebook>.ipynb  the executed notebook (saved after every cell, so a failed or killed run keeps its part)
    config.json, history.csv, summary.json, checkpoint.pt   the Trainer's run folder (``workbench.train.run_folder``)
    result.json       written last, only when the notebook completed: status "finished", metrics, timings
    error.json        instead of result.json when the run failed: the error, the failing cell, the traceback
    worker.log        the worker process's output (every attempt's, each under a header line)
    attempts.json     each time a Dask worker started the run: the batch submission, the worker, start, end, state
    .batch-run.lock   held by the batch worker executing the run (one at a time, whichever batch started it; the
                      Trainer inside holds the run folder's own .run.lock)

A run is finished exactly when result.json exists with status "finished"; a folder with error.json failed; one
whose result.json cannot be read is unreadable; any other folder was interrupted (or is running). Finished runs
are never recomputed; the others are re-run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from workbench.jsonfiles import read_json
from workbench.train.history import final_values

PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "worker.log"
ATTEMPTS_FILE = "attempts.json"
RUN_LOCK_FILE = ".batch-run.lock"

FINISHED, FAILED, INCOMPLETE, NEW, UNREADABLE = "finished", "failed", "incomplete", "new", "unreadable"

# Metrics of a run's history summarised in its result: the last logged value, and the mean over training.
FINAL_METRICS = (
    "test_accuracy",
    "train_accuracy",
    "test_loss",
    "train_eval_loss",
    "lambda_1",
    "trace",
    "adaptive_sharpness",
    "weight_norm",
    "logit_norm",
)
MEAN_METRICS = ("lambda_1", "angle_g_v1", "angle_probe_gradient_v1", "alignment_eps_v1")
# The optimizer's own angles to its tracked v, in [0°, 180°] with v's arbitrary sign; averaged as acute angles.
MEAN_ACUTE_METRICS = (
    "opt_angle_gradient_eigenvector",
    "opt_angle_adversarial_eigenvector",
    "opt_angle_descent_eigenvector",
)


def run_state(folder: str | Path) -> str:
    """``"finished"``, ``"failed"``, ``"incomplete"`` (started, then interrupted or still running), ``"new"``, or
    ``"unreadable"`` (result.json is damaged: ``unreadable_reason`` says how; the run is re-run)."""
    folder = Path(folder)
    if unreadable_reason(folder) is not None:
        return UNREADABLE
    result = read_json(folder / RESULT_FILE)
    if isinstance(result, dict) and result.get("status") == FINISHED:
        return FINISHED
    if (folder / ERROR_FILE).is_file():
        return FAILED
    return INCOMPLETE if folder.is_dir() else NEW


def counted_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of a runs table (``collect``'s) that statistics are taken over: runs that finished and whose
    training finished too. A diverged (or stopped) run is a result, shown in every table with its
    ``train_status``, but its final metrics are those of an earlier evaluation, so it is left out of means."""
    return runs[(runs.state == FINISHED) & (runs.train_status == FINISHED)]


def unreadable_reason(folder: str | Path) -> str | None:
    """Why the run's result.json cannot be read (naming the file), or None when it is absent or readable."""
    try:
        result = read_json(Path(folder) / RESULT_FILE)
    except ValueError as error:
        return str(error)
    if result is not None and not isinstance(result, dict):
        return f"{Path(folder) / RESULT_FILE} holds a {type(result).__name__}, not a mapping"
    return None


def run_metrics(history: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of one run from its tidy history (columns step, epoch, metric, value).

    Returns ``final_step``, the step of the last evaluation, and ``final_<metric>`` for ``FINAL_METRICS``: each
    one's last value at or before that step (``workbench.train.history.final_values``: never a value older than
    the run's last evaluation presented beside newer ones); ``mean_<metric>`` (mean over every logged
    step, step 0 included) for ``MEAN_METRICS`` and, folded to acute angles (θ ↦ min(θ, 180° − θ)) first, for
    ``MEAN_ACUTE_METRICS``; ``best_test_accuracy``; and ``generalization_gap`` = final train accuracy − final test
    accuracy. Angles are in degrees; metrics never logged are NaN (e.g. the alignment of SGD, which has no
    perturbation, or the optimizer's angles of SAM, which tracks no eigenvector).
    """
    step, final = final_values(history, FINAL_METRICS)
    values = {"final_step": math.nan if step is None else float(step)}
    values.update({f"final_{metric}": value for metric, value in final.items()})
    for metric in MEAN_METRICS + MEAN_ACUTE_METRICS:
        series = history[history.metric == metric].value
        if metric in MEAN_ACUTE_METRICS:
            series = 90.0 - (series - 90.0).abs()
        values[f"mean_{metric}"] = float(series.mean()) if len(series) else math.nan
    accuracy = history[history.metric == "test_accuracy"].value
    values["best_test_accuracy"] = float(accuracy.max()) if len(accuracy) else math.nan
    values["generalization_gap"] = values["final_train_accuracy"] - values["final_test_accuracy"]
    return values

