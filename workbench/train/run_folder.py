"""The run folder: one place for its layout, its file names, and how each file is written and read back.

Layout of a run folder (every writer and reader goes through ``RunFolder``)::

    config.json      the run's TrainConfig
    history.csv      the tidy history (step, epoch, metric, value), rewritten atomically as training goes
    checkpoint.pt    everything needed to continue the run exactly (``Trainer.state_dict``), with its checksum
                     (``workbench.train.checkpoint``)
    summary.json     how the run ended: status, reason, steps, seconds, world_size, the final metrics and final_step
                     (the step of the last evaluation, which they describe), config (NaN as null)
    trajectory.pt    weights along the run (live runs; for trajectory-PCA landscapes)
    report.html      a self-contained HTML report of the run
    tensorboard/     TensorBoard event files of the same scalars (with ``tensorboard=True``)
    .run.lock        held (``RunFolder.lock``) by the one process writing the folder

The trainer, live runs, the dashboard, model snapshots, batch records and reports all use this module; a file
name is written here and nowhere else.

The files of a folder belong to one run. A process writes a folder only while it holds its lock (an exclusive
``flock``, released by the operating system however the process ends), so two processes never write one folder.
A run starting afresh in a folder first removes the files of the run that was there (``remove_run_files``); a run
continuing from its checkpoint removes the outcome of its previous attempt (summary and report) and the
temporary files a killed write left behind. ``workbench train`` refuses a folder that already holds files unless
told to ``--resume`` or ``--overwrite`` (``workbench.runs``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from workbench.jsonfiles import read_json, write_json
from workbench.train.config import TrainConfig
from workbench.train.history import History

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
TRAJECTORY_FILE = "trajectory.pt"
REPORT_FILE = "report.html"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".run.lock"
#: Every entry of the layout (the lock aside); temporary ``<name>.tmp`` files of interrupted writes count too.
RUN_FILES = (CONFIG_FILE, HISTORY_FILE, CHECKPOINT_FILE, SUMMARY_FILE, TRAJECTORY_FILE, REPORT_FILE, TENSORBOARD_DIR)
#: Written beside report.html by earlier versions of the reports; removed with the run's other files.
LEGACY_FILES = ("report.json",)
TEMPORARY_SUFFIX = ".tmp"

# Locks this process holds: resolved folder -> (open lock file, nesting depth). A process may take its own lock
# again (a trainer saving into its own folder); other processes are refused.
_held: dict[Path, tuple[IO[str], int]] = {}
_held_guard = threading.Lock()


class RunFolder:
    """A run's folder (it need not exist yet).

    Args:
        path: the folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The folder's name (the run's label in reports)."""
        return self.path.name

    @property
    def config(self) -> Path:
        """Path of config.json."""
        return self.path / CONFIG_FILE

    @property
    def history(self) -> Path:
        """Path of history.csv."""
        return self.path / HISTORY_FILE

    @property
    def checkpoint(self) -> Path:
        """Path of checkpoint.pt."""
        return self.path / CHECKPOINT_FILE

    @property
    def summary(self) -> Path:
        """Path of summary.json."""
        return self.path / SUMMARY_FILE

    @property
    def trajectory(self) -> Path:
        """Path of trajectory.pt."""
        return self.path / TRAJECTORY_FILE

    @property
    def report(self) -> Path:
        """Path of report.html."""
        return self.path / REPORT_FILE

    @property
    def tensorboard(self) -> Path:
        """Path of the TensorBoard event folder."""
        return self.path / TENSORBOARD_DIR

    def create(self) -> RunFolder:
        """Make the folder (and its parents) if needed; returns itself."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # -- ownership --------------------------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[RunFolder]:
        """Hold the folder's lock (creating the folder) for the ``with`` block; this process may nest it.

        Raises:
            ValueError: naming the folder when another process holds the lock, or when it cannot be created.
        """
        key = self.path.resolve()
        with _held_guard:
            handle, depth = _held.get(key, (None, 0))
            if handle is None:
                handle = self._acquire()
            _held[key] = (handle, depth + 1)
        try:
            yield self
        finally:
            with _held_guard:
                handle, depth = _held.pop(key)
                if depth > 1:
                    _held[key] = (handle, depth - 1)
                else:
                    handle.close()  # closing the file releases the lock

    def _acquire(self) -> IO[str]:
        try:
            self.create()
            handle = (self.path / LOCK_FILE).open("a+")
        except OSError as error:
            raise ValueError(f"run folder {self.path} cannot be created or written: {error}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ValueError(
                f"run folder {self.path} is in use by {holder} (it holds {LOCK_FILE}); wait for it to end, or choose "
                "another folder"
            ) from None
        handle.truncate(0)
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        return handle

    def entries(self) -> list[str]:
        """Names in the folder, sorted, the lock file left out (empty when the folder does not exist)."""
        if not self.path.is_dir():
            return []
        return sorted(entry.name for entry in self.path.iterdir() if entry.name != LOCK_FILE)

    def run_entries(self) -> list[str]:
        """The entries that belong to a run: the layout's, their temporary files and legacy files."""
        owned = {*RUN_FILES, *LEGACY_FILES, *(name + TEMPORARY_SUFFIX for name in RUN_FILES)}
        return [name for name in self.entries() if name in owned]

    def foreign_entries(self) -> list[str]:
        """The entries that are not a run's (they are never removed here)."""
        owned = set(self.run_entries())
        return [name for name in self.entries() if name not in owned]

    def remove_run_files(self, *, keep: tuple[str, ...] = ()) -> None:
        """Remove the run's entries (``run_entries``) but ``keep``; foreign files stay."""
        for name in self.run_entries():
            if name not in keep:
                _remove(self.path / name)

    def remove_outcome(self) -> None:
        """Remove what describes how an attempt ended (summary, report) and interrupted writes' temporary files:
        a run continuing from its checkpoint writes them anew."""
        stale = {SUMMARY_FILE, REPORT_FILE, *LEGACY_FILES}
        for name in self.run_entries():
            if name in stale or name.endswith(TEMPORARY_SUFFIX):
                _remove(self.path / name)

    # -- writing ----------------------------------------------------------------------------------------------

    def write_config(self, config: TrainConfig) -> Path:
        """Write config.json."""
        return write_json(self.config, config.to_dict())

    def write_history(self, history: History) -> Path:
        """Write history.csv atomically."""
        return history.save(self.history)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write summary.json atomically (NaN as null)."""
        return write_json(self.summary, summary)

    # -- reading ----------------------------------------------------------------------------------------------

    def read_config(self) -> TrainConfig:
        """The run's TrainConfig from config.json.

        Raises:
            ValueError: naming the file when it is missing or not a valid config.
        """
        values = read_json(self.config)
        if values is None:
            raise ValueError(f"{self.path} has no {CONFIG_FILE}")
        if not isinstance(values, dict):
            raise ValueError(f"{self.config} must hold a mapping of config options, got {type(values).__name__}")
        try:
            return TrainConfig.from_dict(values)
        except ValueError as error:
            raise ValueError(f"{self.config}: {error}") from None

    def read_history(self) -> History:
        """The run's history from history.csv.

        Raises:
            ValueError: naming the folder when it has no history.csv, or the file when it is not a history table.
        """
        if not self.history.is_file():
            raise ValueError(f"{self.path} is not a run folder: it has no {HISTORY_FILE}")
        return History.load(self.history)

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json's values, or None when the run has not written one (it is running or was killed).

        Raises:
            ValueError: naming the file when it is not valid JSON or not a mapping.
        """
        values = read_json(self.summary)
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"{self.summary} must hold a mapping, got {type(values).__name__}")
        return values

    def has_checkpoint(self) -> bool:
        """Whether checkpoint.pt exists."""
        return self.checkpoint.is_file()

    def has_history(self) -> bool:
        """Whether history.csv exists."""
        return self.history.is_file()

    @classmethod
    def of_checkpoint(cls, path: str | Path) -> tuple[RunFolder, Path]:
        """The folder and checkpoint file for ``path``, a run folder holding checkpoint.pt or a checkpoint file.

        Raises:
            ValueError: when ``path`` is neither.
        """
        path = Path(path)
        if path.is_dir():
            folder = cls(path)
            if folder.has_checkpoint():
                return folder, folder.checkpoint
        elif path.is_file():
            return cls(path.parent), path
        raise ValueError(f"{str(path)!r} is neither a run folder with {CHECKPOINT_FILE} nor a checkpoint file")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
