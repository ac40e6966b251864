"""Run a grid on Dask distributed: one task per run, with a progress bar; finished runs are skipped.

Every run is submitted to a Dask client (``workbench.batch.cluster``): an embedded LocalCluster of ``workers``
single-threaded worker processes, or an existing cluster at ``scheduler`` (``tcp://HOST:PORT``). The path is the
same either way: each task (``workbench.batch.tasks``) executes its run in a child process of its Dask worker,
into ``output/<run name>/``, which must be a path the workers share with this process.

Threads: each run's kernel gets ``OMP_NUM_THREADS=threads_per_run`` (default 1), so N workers on N cores use one
core each; more OpenMP threads than cores slow a busy CPU down many times over. Give a GPU run more threads
(and fewer workers) when its data pipeline needs them. Each run also gets the batch's data root (``data_dir``,
resolved once here) in ``$WORKBENCH_DATA`` (every run reads and caches its data in one place, e.g. a shared
folder of a cluster) and, where the worker has it, the checkout this ``workbench`` was imported from first on
``PYTHONPATH``.

Re-running the same grid into the same output is the way to resume: finished runs (result.json with status
"finished") are skipped, failed and interrupted ones run again from the start. A run whose Dask worker is lost
is retried once, then marked failed with the reason. One batch at a time may use an output folder (a lock,
released by the operating system even when the batch is killed).
"""

from __future__ import annotations

import fcntl
import os
import site
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import workbench
from workbench._checks import check_int
from workbench.batch.cluster import dask_client
from workbench.batch.grid import Grid, RunSpec, load_grid
from workbench.batch.records import ERROR_FILE, FINISHED, PARAMS_FILE, RESULT_FILE, run_state
from workbench.batch.tasks import execute_on_worker, record_task_failure
from workbench.datasets.root import DATA_ROOT_VARIABLE, resolve_data_root
from workbench.jsonfiles import read_json, write_json

LOCK_FILE = ".batch.lock"


@dataclass(frozen=True)
class BatchSummary:
    """What one invocation did: run names finished now, skipped (finished before), failed, and diverged
    (finished now, but training diverged: a result, not a failure)."""

    output: Path
    finished: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    diverged: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no run failed."""
        return not self.failed

    def describe(self) -> str:
        """A few lines for the terminal: the counts, then each failed run with its error and where to look."""
        total = len(self.finished) + len(self.skipped) + len(self.failed)
        lines = [
            f"{total} runs in {self.output}: {len(self.finished)} finished now, {len(self.skipped)} finished before "
            f"(skipped), {len(self.failed)} failed, {len(self.diverged)} diverged while training"
        ]
        for name in self.failed:
            lines.append(f"  failed {name}: {_error_text(self.output / name)} (see {name}/{ERROR_FILE})")
        return "\n".join(lines)


def default_workers() -> int:
    """The number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_batch(
    grid: Grid | str | Path,
    output: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    kernel_name: str = "python3",
    threads_per_run: int = 1,
    progress: bool = True,
    data_dir: str | Path | None = None,
) -> BatchSummary:
    """Execute every run of ``grid`` that has not finished yet into ``output/<run name>/``.

    One failed run does not stop the others: it keeps its partly executed notebook and an error.json, and the
    batch goes on. Everything is validated before the first run starts.

    Args:
        grid: a ``Grid`` or the path of a grid file.
        output: the batch's folder (created); on a cluster, a path its workers share.
        workers: the embedded LocalCluster's worker processes (runs at once), >= 1; None: ``default_workers()``.
            Not with ``scheduler``, whose cluster has its own.
        scheduler: the address of an existing Dask cluster's scheduler (``tcp://HOST:PORT``); None: a
            LocalCluster started here for the batch.
        kernel_name: the Jupyter kernel the notebooks run in.
        threads_per_run: ``OMP_NUM_THREADS`` of each run's kernel, >= 1.
        progress: show a progress bar of runs (a line per ended run is printed to stderr either way).
        data_dir: the data root of every run (passed to the workers as ``$WORKBENCH_DATA``); None: resolved here
            as ``workbench.datasets.resolve_data_root`` documents.

    Raises:
        ValueError: for an invalid grid, an unknown kernel, bad ``workers``/``threads_per_run``, ``workers`` with
            ``scheduler``, a scheduler that does not answer or lacks the grid's resources, or an output folder in
            use by another batch.
    """
    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    if scheduler is not None and workers is not None:
        raise ValueError("workers sizes the local cluster; with scheduler, the cluster's own workers run the batch")
    workers = check_int("workers", default_workers() if workers is None else workers, minimum=1)
    threads_per_run = check_int("threads_per_run", threads_per_run, minimum=1)
    _check_kernel(kernel_name)
    data_root = resolve_data_root(data_dir).path
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    with _exclusive(output / LOCK_FILE):
        skipped = tuple(run.name for run in grid.runs if run_state(output / run.name) == FINISHED)
        todo = [run for run in grid.runs if run.name not in skipped]
        for index, run in enumerate(grid.runs):
            if run in todo:
                (output / run.name).mkdir(exist_ok=True)
                write_json(output / run.name / PARAMS_FILE, _params(run, index, grid))
        environment = {"OMP_NUM_THREADS": str(threads_per_run), DATA_ROOT_VARIABLE: str(data_root)}
        with dask_client(scheduler, workers, grid.resources) as client:
            ended = _execute(client, todo, output, grid, kernel_name, environment, progress, len(skipped))
    finished = tuple(name for name in ended if run_state(output / name) == FINISHED)
    diverged = tuple(
        name for name in finished if (read_json(output / name / RESULT_FILE) or {}).get("train_status") == "diverged"
    )
    failed = tuple(name for name in ended if name not in finished)
    return BatchSummary(output, finished, skipped, failed, diverged)


def _checkout() -> str | None:
    """The source checkout this ``workbench`` was imported from, or None for an installed copy (in a site
    directory): the runs' kernels (which start in the run folder) then import the same ``workbench`` as the batch."""
    checkout = Path(workbench.__file__).resolve().parents[1]
    site_directories = {Path(path).resolve() for path in [*site.getsitepackages(), site.getusersitepackages()]}
    return None if checkout in site_directories else str(checkout)


def _params(run: RunSpec, index: int, grid: Grid) -> dict[str, object]:
    """params.json: the run, its position in the grid, and the grid's notebook, file and description."""
    source = {"grid": None if grid.path is None else str(grid.path), "description": grid.description}
    return {**run.to_dict(), "index": index, "notebook": str(grid.notebook), **source}


def _execute(
    client: Any,
    todo: list[RunSpec],
    output: Path,
    grid: Grid,
    kernel_name: str,
    environment: dict[str, str],
    progress: bool,
    done: int,
) -> list[str]:
    """Submit every run of ``todo`` to ``client`` (with the grid's resources) and wait for them; return the names
    of ended runs, in the order they ended.

    A run whose task failed in Dask (its workers lost) gets error.json here. On an interrupt (or any error here)
    the caller closes the client and a local cluster, which cancels the runs still executing (they stay unfinished).
    """
    from distributed import as_completed

    submission = uuid.uuid4().hex
    futures = {
        client.submit(
            execute_on_worker,
            str(output / run.name),
            kernel_name,
            environment,
            _checkout(),
            submission,
            key=f"{run.name}-{submission[:8]}",
            pure=False,
            resources=grid.resources or None,
        ): run
        for run in todo
    }
    ended: list[str] = []
    bar = tqdm(total=len(grid.runs), initial=done, unit="run", desc=output.name, disable=not progress)
    try:
        for future in as_completed(futures):
            run = futures[future]
            try:
                future.result()
            except Exception as error:  # in Dask, not in the run: KilledWorker, or a worker that cannot start it
                record_task_failure(output / run.name, error)
            ended.append(run.name)
            bar.update(1)
            tqdm.write(_outcome(output / run.name), file=sys.stderr)
    finally:
        bar.close()
    return ended


def _outcome(folder: Path) -> str:
    """One line about an ended run."""
    if run_state(folder) == FINISHED:
        result = read_json(folder / RESULT_FILE)
        accuracy = result["metrics"].get("final_test_accuracy")
        accuracy_text = "" if accuracy is None else f", test accuracy {accuracy:.4f}"
        return f"finished {folder.name}: {result['train_status']} in {result['seconds']:.1f} s{accuracy_text}"
    return f"FAILED   {folder.name}: {_error_text(folder)}"


def _error_text(folder: Path) -> str:
    """"<error>: <message>" from a failed run's error.json, or what is wrong with that file."""
    try:
        error = read_json(folder / ERROR_FILE)
    except ValueError as problem:
        return str(problem)
    if not isinstance(error, dict):
        return f"{folder / ERROR_FILE} is missing or not a mapping"
    return f"{error.get('error')}: {error.get('message')}"


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    available = sorted(KernelSpecManager().find_kernel_specs())
    if kernel_name not in available:
        raise ValueError(
            f"kernel_name must be an installed Jupyter kernel ({', '.join(available)}); got {kernel_name!r}"
        )


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the OS releases it when the process ends, however it ends)."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"output {path.parent} is in use by another running batch") from None
        yield
