"""Batches end to end: the quick grid through notebook 05, an isolated failure, and a resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from tests.batch_notebooks import FAILING_SEED, write_grid
from workbench.batch import collect, load_grid, run_batch
from workbench.batch.records import ERROR_FILE, RESULT_FILE, run_state
from workbench.batch.runner import LOCK_FILE, _exclusive
from workbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_the_quick_grid_runs_notebook_05_and_collects_into_a_four_row_table(tmp_path):
    output = tmp_path / "quick"
    summary = run_batch(REPO / "grids" / "quick.yaml", output, workers=2, progress=False)
    assert summary.ok and len(summary.finished) == 4 and not summary.skipped

    collection = collect(output)
    runs = collection.runs
    assert len(runs) == 4 and set(runs.state) == {"finished"} and set(runs.train_status) == {"finished"}
    assert list(runs.group) == ["sgd", "eigensam", "sgd", "eigensam"]  # the grid's order: seed 0 first
    assert runs.final_test_accuracy.between(0, 1).all() and (runs.final_lambda_1 > 0).all()
    assert runs[runs.group == "sgd"].mean_alignment_eps_v1.isna().all()  # SGD has no perturbation
    assert runs[runs.group == "eigensam"].mean_alignment_eps_v1.between(0, 1).all()
    assert set(runs.steps) == {12} and set(runs.optimizer) == {"sgd", "eigensam"}
    assert list(collection.statistics.group) == ["sgd", "eigensam"]
    assert set(collection.statistics.final_test_accuracy_n) == {2}
    assert len(pd.read_parquet(output / "results.parquet")) == 4 and len(pd.read_csv(output / "results.csv")) == 4
    assert set(pd.read_parquet(output / "histories.parquet").run) == set(runs.run)
    assert "| sgd | 2 |" in (output / "summary.md").read_text()
    assert "plotly" in (output / "report.html").read_text()

    folder = output / runs.run[1]
    result = json.loads((folder / RESULT_FILE).read_text())
    assert result["config"]["optimizer"] == "eigensam" and result["config"]["freq"] == 4
    executed = nbformat.read(folder / "05_reproduce_papers.ipynb", as_version=4)
    assert "widgets" not in executed.metadata  # store_widget_state=False
    outputs = [item for cell in executed.cells for item in cell.get("outputs", [])]
    assert outputs and not [item for item in outputs if item["output_type"] == "error"]

    again = run_batch(REPO / "grids" / "quick.yaml", output, workers=2, progress=False)
    assert len(again.skipped) == 4 and not again.finished


def test_a_run_that_raises_is_isolated_and_keeps_its_notebook(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the kernels must get one thread each, whatever the batch has
    grid = write_grid(tmp_path, grid={"seed": [0, FAILING_SEED, 2]})
    output = tmp_path / "out"
    assert main(["batch", "run", str(grid), "--output", str(output), "--workers", "2", "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "2 finished now" in printed and "1 failed" in printed and f"seed {FAILING_SEED} fails on purpose" in printed

    names = [run.name for run in load_grid(grid).runs]
    assert [run_state(output / name) for name in names] == ["finished", "failed", "finished"]
    kernel = json.loads((output / names[0] / "summary.json").read_text())["kernel"]
    assert kernel == {"threads": "1", "workbench": str(REPO / "workbench" / "__init__.py")}
    error = json.loads((output / names[1] / ERROR_FILE).read_text())
    assert error["error"] == "RuntimeError" and "fails on purpose" in error["traceback"]
    failed_notebook = nbformat.read(output / names[1] / "fake.ipynb", as_version=4)  # kept, with the error shown
    errors = [item for cell in failed_notebook.cells for item in cell.get("outputs", []) if "ename" in item]
    assert [item["ename"] for item in errors] == ["RuntimeError"]
    assert failed_notebook.cells[-1].execution_count == error["execution_count"]

    assert main(["batch", "collect", str(output)]) == 0
    runs = pd.read_csv(output / "results.csv")
    assert list(runs.state) == ["finished", "failed", "finished"]
    assert runs.error[1].startswith("RuntimeError: seed 13 fails on purpose")
    assert list(runs.final_test_accuracy[[0, 2]]) == [0.0, 0.02]


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds leftover processes through Linux's /proc")
def test_a_batch_killed_mid_run_resumes_without_recomputing_finished_runs(tmp_path):
    grid = write_grid(tmp_path, base={"steps": 40}, grid={"seed": [0, 1]})  # each run sleeps 4 s
    first, second = (tmp_path / "out" / run.name for run in load_grid(grid).runs)
    command = [sys.executable, "-m", "workbench.cli", "batch", "run", str(grid), "--output", str(tmp_path / "out")]
    batch = subprocess.Popen([*command, "--workers", "1", "--no-progress"], stdout=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (first / RESULT_FILE).is_file() and (second / "fake.ipynb").is_file(), timeout=240)
    finally:
        os.kill(batch.pid, signal.SIGKILL)
        batch.wait()
    finished_at = (first / RESULT_FILE).stat().st_mtime_ns
    # the interrupted run's worker (its command names the folder) and kernel (working in the folder) end by themselves
    _wait_for(lambda: not _processes_using(second), timeout=10)
    assert run_state(second) == "incomplete" and not (second / "history.csv").exists()

    summary = run_batch(grid, tmp_path / "out", workers=1, progress=False)
    assert summary.skipped == (first.name,) and summary.finished == (second.name,)
    assert (first / RESULT_FILE).stat().st_mtime_ns == finished_at


def test_one_output_folder_serves_one_batch_at_a_time(tmp_path):
    grid = write_grid(tmp_path, grid={"seed": [0]})
    (tmp_path / "out").mkdir()
    with _exclusive(tmp_path / "out" / LOCK_FILE), pytest.raises(ValueError, match="in use by another running batch"):
        run_batch(grid, tmp_path / "out", progress=False)


def _wait_for(condition, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


def _processes_using(folder: Path) -> list[int]:
    """Process ids whose command line names ``folder`` or whose working directory is ``folder`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            working = os.readlink(entry / "cwd")
        except OSError:  # the process ended meanwhile, or is not ours to inspect
            continue
        if str(folder) in command or working == str(folder):
            found.append(int(entry.name))
    return found
