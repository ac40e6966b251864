"""The run folder: one place for its layout, its file names, and how each file is written and read back.

Layout of a run folder (every writer and reader goes through ``RunFolder``)::

    config.json      the run's TrainConfig
    history.csv      the tidy history (step, epoch, metric, value), rewritten atomically as training goes
    checkpoint.pt    everything needed to continue the run exactly (``Trainer.state_dict``)
    summary.json     how the run ended: status, reason, steps, seconds, world_size, final metrics, config (NaN as null)
    trajectory.pt    weights along the run (live runs; for trajectory-PCA landscapes)
    report.html      a self-contained HTML report of the run
    tensorboard/     TensorBoard event files of the same scalars (with ``tensorboard=True``)

The trainer, live runs, the dashboard, model snapshots, batch records and reports all use this module; a file
name is written here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        return TrainConfig.from_dict(values)

    def read_history(self) -> History:
        """The run's history from history.csv.

        Raises:
            ValueError: naming the folder when it has no history.csv.
        """
        if not self.history.is_file():
            raise ValueError(f"{self.path} is not a run folder: it has no {HISTORY_FILE}")
        return History.load(self.history)

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json's values, or None when the run has not written one (it is running or was killed)."""
        return read_json(self.summary)

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
