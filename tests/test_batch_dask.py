"""Batches on Dask distributed beyond the embedded LocalCluster (test_batch_runs covers that one): a cluster
started as separate processes (``dask scheduler``, ``dask worker``) with a submitter killed there, and Dask
workers killed in the middle of runs. The runs are the fast stand-in notebook of tests/batch_notebooks.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batch_notebooks import write_grid
from workbench.batch import load_grid, run_batch
from workbench.batch.records import ATTEMPTS_FILE, ERROR_FILE, RESULT_FILE, run_state
from workbench.batch.tasks import record_task_failure

DASK = Path(sys.executable).parent / "dask"
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through Linux's /proc")


@pytest.fixture
def cluster(tmp_path) -> Iterator[str]:
    """A scheduler and two single-threaded workers (each offering one "slot") as separate processes; its address."""
    scheduler_file = tmp_path / "scheduler.json"
    started = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_for(scheduler_file.is_file, timeout=60)
        for _ in range(2):
            worker = [str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1"]
            worker += ["--no-dashboard", "--resources", "slot=1"]
            started.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)


def test_a_grid_on_a_cluster_of_separate_processes_survives_its_submitter_being_killed(tmp_path, cluster):
    grid = write_grid(tmp_path, base={"steps": 30}, grid={"seed": [0, 1]}, resources={"slot": 1})
    output = tmp_path / "out"
    names = [run.name for run in load_grid(grid).runs]
    command = [sys.executable, "-m", "workbench.cli", "batch", "run", str(grid), "--output", str(output)]
    submitter = subprocess.Popen([*command, "--scheduler", cluster, "--no-progress"], stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(_run_workers(output)) == 2, timeout=300)
    finally:
        os.kill(submitter.pid, signal.SIGKILL)
        submitter.wait()
    _wait_for(lambda: not _run_workers(output), timeout=30)  # Dask cancelled the orphaned runs: they stopped
    assert {run_state(output / name) for name in names} <= {"incomplete", "new"}

    summary = run_batch(grid, output, scheduler=cluster, progress=False)
    assert summary.ok and sorted(summary.finished) == sorted(names)
    for name in names:
        attempts = json.loads((output / name / ATTEMPTS_FILE).read_text())["attempts"]
        assert attempts[-1]["state"] == "finished" and attempts[-1]["worker"].startswith("tcp://")
    kernel = json.loads((output / names[0] / "summary.json").read_text())["kernel"]
    assert kernel["threads"] == "1" and kernel["workbench"].startswith(str(Path(__file__).resolve().parents[1]))

    (tmp_path / "needy").mkdir()
    needy = write_grid(tmp_path / "needy", grid={"seed": [0]}, resources={"GPU": 1})
    with pytest.raises(ValueError, match=r"GPU=1, which no worker of the cluster at .* offers; start workers with"):
        run_batch(needy, tmp_path / "needy-out", scheduler=cluster, progress=False)
    with pytest.raises(ValueError, match="workers sizes the local cluster"):
        run_batch(grid, output, scheduler=cluster, workers=2, progress=False)


def test_a_run_whose_worker_is_killed_is_retried_once_then_marked_failed(tmp_path):
    grid = write_grid(tmp_path, base={"steps": 30}, grid={"seed": [0, 1]})  # each run sleeps 3 s
    output = tmp_path / "out"
    retried, failed = (output / run.name for run in load_grid(grid).runs)
    command = [sys.executable, "-m", "workbench.cli", "batch", "run", str(grid), "--output", str(output)]
    batch = subprocess.Popen(
        [*command, "--workers", "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _kill_dask_worker_of(retried, attempt=1)
        _kill_dask_worker_of(failed, attempt=1)
        _kill_dask_worker_of(failed, attempt=2)
        printed, _ = batch.communicate(timeout=240)
    finally:
        batch.kill()
    assert batch.returncode == 1 and "1 finished now" in printed and "1 failed" in printed
    assert run_state(retried) == "finished" and (retried / RESULT_FILE).is_file()
    assert [attempt.get("state") for attempt in _attempts(retried)] == [None, "finished"]
    error = json.loads((failed / ERROR_FILE).read_text())
    assert error["error"] == "WorkerLost" and "lost 2 times" in error["message"] and "retried once" in error["message"]
    assert len(_attempts(failed)) == 2 and f"WorkerLost: {error['message']}" in printed


@pytest.mark.parametrize(
    ("resources", "message"),
    [({"GPU": 0}, "'GPU' must be a name with an amount > 0"), ([1], "resources must be a mapping")],
)
def test_bad_resources_are_refused_before_anything_runs(tmp_path, resources, message):
    with pytest.raises(ValueError, match=message):
        load_grid(write_grid(tmp_path, grid={"seed": [0]}, resources=resources))
    assert load_grid(write_grid(tmp_path, grid={"seed": [0]}, resources={"GPU": 1})).resources == {"GPU": 1.0}


def test_a_task_that_dask_gave_up_on_is_recorded_as_lost(tmp_path):
    from types import SimpleNamespace

    from distributed import KilledWorker

    (tmp_path / "a").mkdir()
    record_task_failure(tmp_path / "a", KilledWorker("run-a", SimpleNamespace(address="tcp://127.0.0.1:1"), 3))
    error = json.loads((tmp_path / "a" / ERROR_FILE).read_text())
    assert error["error"] == "WorkerLost" and error["message"].startswith("Dask gave up on the run")
    (tmp_path / "b").mkdir()
    record_task_failure(tmp_path / "b", OSError("no python here"))
    assert json.loads((tmp_path / "b" / ERROR_FILE).read_text())["error"] == "OSError"


def _kill_dask_worker_of(folder: Path, *, attempt: int) -> None:
    """Wait for ``folder``'s attempt number ``attempt`` to execute, then SIGKILL the Dask worker running it."""
    _wait_for(lambda: len(_attempts(folder)) == attempt and _run_workers(folder), timeout=300)
    (process,) = _run_workers(folder)
    os.kill(_parent(process), signal.SIGKILL)


def _attempts(folder: Path) -> list[dict]:
    path = folder / ATTEMPTS_FILE
    return json.loads(path.read_text())["attempts"] if path.is_file() else []


def _run_workers(folder: Path) -> list[int]:
    """Process ids of ``python -m workbench.batch.worker`` processes for runs under ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "workbench.batch.worker" in command and any(part.startswith(str(folder)) for part in command):
                found.append(int(entry.name))
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait_for(condition, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)
