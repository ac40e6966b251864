"""What a Dask worker does for one run of a batch: record the attempt, run the run's worker process, report.

``execute_on_worker`` is the function the batch submits to its Dask client, once per run. It starts
``python -m workbench.batch.worker FOLDER`` as a child process and waits for it: papermill's handling of the working
directory is not thread-safe (a Dask worker may run several tasks in threads), and a process of its own gives each
run its environment (``OMP_NUM_THREADS``, the data root, the checkout on ``PYTHONPATH``), its log, and an end
together with its Dask worker (the child exits when its parent does).

Attempts: each start is appended to the run's attempts.json with the batch's submission id, and marked ended with
the run's state when the child returns. Dask re-runs a task whose worker was lost; a start that finds two attempts
of its submission that never ended marks the run failed ("WorkerLost", with the workers and times) instead of
starting a third: a run whose worker is lost is retried once. (This needs the scheduler's ``allowed-failures``,
3 by default, to be at least 2; with fewer, Dask gives up first and the batch records the same failure.)

A task whose batch is gone (the submitting command was killed, so Dask cancelled it) stops its run within
``POLL_SECONDS``. A run still executing from an earlier batch holds the run's lock: the child waits for it, and
finds the run finished rather than computing it again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.batch.records import ATTEMPTS_FILE, ERROR_FILE, FAILED, FINISHED, LOG_FILE, run_state
from workbench.jsonfiles import read_json, write_json

POLL_SECONDS = 0.5
#: Attempts of one submission that may be lost before the run is marked failed (the first, and its one retry).
MAX_LOST_ATTEMPTS = 2


def execute_on_worker(
    folder: str, kernel_name: str, environment: dict[str, str], checkout: str | None, submission: str
) -> str:
    """Execute the run in ``folder`` (its params.json written) in a child process; return its state
    (``"finished"``, ``"failed"``, or ``"incomplete"`` when the batch was cancelled).

    Args:
        folder: the run's folder, on a path this worker shares with the submitter.
        kernel_name: the Jupyter kernel of the notebook.
        environment: variables set for the run (``OMP_NUM_THREADS``, ``WORKBENCH_DATA``) over the worker's own.
        checkout: the source checkout the submitter imported ``workbench`` from (put first on ``PYTHONPATH``
            when this worker has it too), or None.
        submission: the batch invocation's id (attempts of earlier invocations do not count as lost here).
    """
    run = Path(folder)
    lost = [attempt for attempt in _attempts(run) if attempt["submission"] == submission and "ended" not in attempt]
    if len(lost) >= MAX_LOST_ATTEMPTS:
        _mark_lost(run, lost)
        return FAILED
    worker, key = _dask_task()
    index = _record_start(run, submission, worker)
    with (run / LOG_FILE).open("ab") as log:
        log.write(f"=== attempt {index + 1} on {worker or socket.gethostname()} at {_now()} ===\n".encode())
        log.flush()
        command = [sys.executable, "-m", "workbench.batch.worker", str(run), "--kernel", kernel_name]
        command += ["--parent", str(os.getpid())]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_run_environment(environment, checkout),
            start_new_session=True,  # signals to the worker's group (a Ctrl-C) reach the worker, which ends it
        )
        cancelled = False
        while process.poll() is None:
            if _cancelled(worker, key):
                process.terminate()
                process.wait()
                cancelled = True
                break
            time.sleep(POLL_SECONDS)
    state = run_state(run)
    if not cancelled and state not in (FINISHED, FAILED):
        write_json(
            run / ERROR_FILE,
            {
                "status": FAILED,
                "run": run.name,
                "error": "WorkerExited",
                "message": f"the worker process exited with status {process.returncode} without a result; "
                f"see {LOG_FILE}",
            },
        )
        state = FAILED
    _record_end(run, index, state)
    return state


def record_task_failure(folder: str | Path, error: BaseException) -> None:
    """error.json for a run whose task failed in Dask rather than in the run, unless the run has ended otherwise:
    ``KilledWorker`` (Dask gave up after its workers died, its scheduler allowing fewer retries than
    ``MAX_LOST_ATTEMPTS``) as "WorkerLost", anything else under its own name."""
    run = Path(folder)
    if run_state(run) in (FINISHED, FAILED):
        return
    lost = type(error).__name__ == "KilledWorker"
    message = f"Dask gave up on the run: {error}" if lost else str(error)
    failure = {"error": "WorkerLost" if lost else type(error).__name__, "message": message}
    write_json(run / ERROR_FILE, {"status": FAILED, "run": run.name, **failure})


def _mark_lost(run: Path, lost: list[dict[str, Any]]) -> None:
    places = "; ".join(f"{attempt['worker']} from {attempt['started']}" for attempt in lost)
    message = (
        f"the Dask worker executing this run was lost {len(lost)} times ({places}); it was retried once and is "
        f"not retried again. See {LOG_FILE} (each attempt's output) and the workers' logs"
    )
    write_json(run / ERROR_FILE, {"status": FAILED, "run": run.name, "error": "WorkerLost", "message": message})


def _attempts(run: Path) -> list[dict[str, Any]]:
    return (read_json(run / ATTEMPTS_FILE) or {}).get("attempts", [])


def _record_start(run: Path, submission: str, worker: str | None) -> int:
    attempts = _attempts(run)
    attempts.append({"submission": submission, "worker": worker or socket.gethostname(), "started": _now()})
    write_json(run / ATTEMPTS_FILE, {"attempts": attempts})
    return len(attempts) - 1


def _record_end(run: Path, index: int, state: str) -> None:
    attempts = _attempts(run)
    attempts[index].update(ended=_now(), state=state)
    write_json(run / ATTEMPTS_FILE, {"attempts": attempts})


def _run_environment(environment: dict[str, str], checkout: str | None) -> dict[str, str]:
    """The worker's environment with the run's variables, and the submitter's checkout first on ``PYTHONPATH``
    when this machine has it (the notebook's kernel then imports the same ``workbench`` as the batch)."""
    merged = {**os.environ, **environment}
    if checkout is not None and (Path(checkout) / "workbench" / "__init__.py").is_file():
        merged["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    return merged


def _dask_task() -> tuple[str | None, str | None]:
    """This Dask worker's address and the running task's key (None, None outside a Dask worker)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        return get_worker().address, thread_state.key
    except (ImportError, ValueError, AttributeError):
        return None, None


def _cancelled(address: str | None, key: str | None) -> bool:
    """Whether Dask cancelled the running task (its client, the batch, went away)."""
    if address is None or key is None:
        return False
    from distributed import get_worker

    task = get_worker().state.tasks.get(key)
    return task is None or task.state == "cancelled"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
