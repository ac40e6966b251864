"""One batch run in its own process: execute the notebook with papermill, then write result.json or error.json.

A Dask worker starts ``python -m workbench.batch.worker FOLDER --kernel NAME --parent PID`` per run
(``workbench.batch.tasks``). The worker ends itself within ``PARENT_POLL_SECONDS`` of its parent's death (even by
``kill -9``), and the kernel it started ends within a second of the worker's (ipykernel polls its parent too), so
a killed batch leaves no run executing behind it: re-running the batch can safely start its interrupted runs
again. It holds the run's lock (``.batch-run.lock``) while it executes; another worker process for the same run waits
for it and then, finding the run finished, does not execute it again.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from workbench.batch.grid import RUN_DIR_PARAMETER
from workbench.batch.records import (
    ERROR_FILE,
    FAILED,
    FINISHED,
    PARAMS_FILE,
    RESULT_FILE,
    RUN_LOCK_FILE,
    run_metrics,
    run_state,
)
from workbench.jsonfiles import read_json, write_json

PARENT_POLL_SECONDS = 0.5
PARENT_GONE = 3  # exit status of a worker whose batch died
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Seconds a run's kernel may take to start: papermill's default, 60, was too short on a loaded 2-core machine
#: (several runs starting kernels at once beside other jobs), which failed a run before it began.
KERNEL_START_SECONDS = 300


def execute_run(folder: Path, *, kernel_name: str) -> bool:
    """Execute the notebook of the run described by ``folder/params.json``; True when it finished.

    The notebook gets the run's options and ``run_dir=folder`` as parameters and runs with ``folder`` as its
    working directory. Success writes result.json (status, the Trainer's outcome and config, ``run_metrics``,
    wall and training seconds); any error writes error.json and keeps the partly executed notebook. An interrupt
    (KeyboardInterrupt) writes neither, so the run counts as interrupted and is re-run next time.
    """
    import papermill

    from workbench.train.run_folder import RunFolder

    spec = read_json(folder / PARAMS_FILE)
    notebook = Path(spec["notebook"])
    for stale in (RESULT_FILE, ERROR_FILE):
        (folder / stale).unlink(missing_ok=True)
    output = folder / notebook.name
    started, clock = _now(), time.perf_counter()
    record = {"run": spec["name"], "group": spec["group"], "notebook": output.name, "started": started}
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters={**spec["options"], RUN_DIR_PARAMETER: str(folder)},
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=str(folder),
            store_widget_state=False,
            start_timeout=KERNEL_START_SECONDS,
        )
        trained = RunFolder(folder)
        summary = trained.read_summary()
        if summary is None or not trained.has_history():
            raise RuntimeError(
                f"the notebook completed but wrote no {trained.summary.name} and {trained.history.name} into "
                "run_dir; a batch notebook must train a workbench Trainer with run_dir=run_dir"
            )
        metrics = run_metrics(trained.read_history().to_frame())
    except papermill.PapermillExecutionError as error:
        failure = {
            "error": error.ename,
            "message": _ANSI.sub("", str(error.evalue)),
            "execution_count": error.exec_count,  # the failing cell's In [n] in the kept notebook
            "traceback": _ANSI.sub("", "\n".join(error.traceback)),
        }
        write_json(folder / ERROR_FILE, {"status": FAILED, **record, **failure, **_ended(clock)})
        return False
    except Exception as error:
        failure = {"error": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()}
        write_json(folder / ERROR_FILE, {"status": FAILED, **record, **failure, **_ended(clock)})
        return False
    outcome = {
        "train_status": summary["status"],
        "reason": summary["reason"],
        "steps": summary["steps"],
        "train_seconds": summary["seconds"],
        "config": summary["config"],
        "metrics": metrics,
    }
    write_json(folder / RESULT_FILE, {"status": FINISHED, **record, **_ended(clock), **outcome})
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a worker process; exit status 0 when the run finished, 1 when it failed."""
    parser = argparse.ArgumentParser(prog="python -m workbench.batch.worker", description="run one batch run")
    parser.add_argument("folder", type=Path, help="the run's folder (holds params.json)")
    parser.add_argument("--kernel", required=True, help="Jupyter kernel name")
    parser.add_argument("--parent", type=int, required=True, help="process id of the batch; exit when it dies")
    args = parser.parse_args(argv)
    _exit_with_parent(args.parent)
    with (args.folder / RUN_LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the operating system when this process ends, however
        if run_state(args.folder) == FINISHED:
            print(f"{args.folder.name} was finished meanwhile by an earlier batch; not executed again")
            return 0
        return 0 if execute_run(args.folder, kernel_name=args.kernel) else 1


def _exit_with_parent(parent: int) -> None:
    """Watch in a daemon thread; end this process at once when its parent is no longer ``parent``."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(PARENT_GONE)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ended(clock: float) -> dict[str, object]:
    return {"ended": _now(), "seconds": round(time.perf_counter() - clock, 3)}


if __name__ == "__main__":
    sys.exit(main())
