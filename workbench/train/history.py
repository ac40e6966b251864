"""The run history: one tidy table (step, epoch, metric, value), safe to read while training writes it."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

COLUMNS = ("step", "epoch", "metric", "value")
#: Logged by every evaluation (with or without a test split, whatever the loss): its last step is the step of a
#: run's final metrics.
EVALUATION_METRIC = "train_eval_loss"


class History:
    """Append-only tidy records of a run; every reader gets a consistent copy.

    One row per (step, metric): ``step`` counts optimizer steps from 0, ``epoch`` is fractional
    (step / steps per epoch), ``value`` a float (angles in degrees, losses in nats, accuracies in [0, 1]).
    """

    def __init__(self, rows: Iterable[tuple[int, float, str, float]] = ()) -> None:
        self._rows: list[tuple[int, float, str, float]] = list(rows)
        self._lock = threading.Lock()

    def log(self, step: int, epoch: float, values: Mapping[str, float]) -> None:
        """Record several metrics at one step; non-finite values are kept (they explain divergences)."""
        rows = [(int(step), float(epoch), str(name), float(value)) for name, value in values.items()]
        with self._lock:
            self._rows.extend(rows)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def rows_since(self, start: int) -> list[tuple[int, float, str, float]]:
        """Rows appended after the first ``start`` ones (for live consumers that poll incrementally)."""
        with self._lock:
            return self._rows[start:]

    def to_frame(self) -> pd.DataFrame:
        """A copy of the whole table as a DataFrame with columns step, epoch, metric, value."""
        with self._lock:
            rows = list(self._rows)
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def series(self, metric: str) -> pd.DataFrame:
        """The rows of one metric, ordered by step, with columns step, epoch, value."""
        frame = self.to_frame()
        return frame[frame.metric == metric].drop(columns="metric").reset_index(drop=True)

    def last(self, metric: str) -> float:
        """The latest value of ``metric`` (NaN when never logged)."""
        with self._lock:
            for _, _, name, value in reversed(self._rows):
                if name == metric:
                    return value
        return math.nan

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (used when resuming from a checkpoint taken at ``step``)."""
        with self._lock:
            self._rows = [row for row in self._rows if row[0] <= step]

    def save(self, path: str | Path) -> Path:
        """Write the table as CSV (or Parquet for a ``.parquet`` suffix), atomically (temp file + rename)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        frame = self.to_frame()
        try:
            if path.suffix == ".parquet":
                frame.to_parquet(temporary, index=False)
            else:
                frame.to_csv(temporary, index=False)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a table written by ``save``.

        Raises:
            ValueError: naming the file when it cannot be read as a history table.
        """
        path = Path(path)
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            missing = set(COLUMNS) - set(frame.columns)
            if missing:
                raise ValueError(f"columns {sorted(missing)} are missing")
            return cls(
                (int(r.step), float(r.epoch), str(r.metric), float(r.value)) for r in frame.itertuples(index=False)
            )
        except (OSError, ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ValueError(f"{path} is not a history table (or cannot be read): {error}") from None


def final_values(frame: pd.DataFrame, metrics: Iterable[str]) -> tuple[int | None, dict[str, float]]:
    """A run's final metrics: the step of its last evaluation, and each metric's last value logged at or before
    that step (NaN for a metric never logged by then; every value NaN and the step None without an evaluation).

    Values logged after the last evaluation (the losses of a run that diverged or was stopped between two
    evaluations) are not final metrics: they describe weights that were never evaluated.

    Args:
        frame: a tidy history (columns step, epoch, metric, value).
        metrics: the metric names.
    """
    evaluations = frame.step[frame.metric == EVALUATION_METRIC]
    if evaluations.empty:
        return None, {name: math.nan for name in metrics}
    step = int(evaluations.max())
    logged = frame[frame.step <= step].sort_values("step", kind="stable")
    values = {}
    for name in metrics:
        series = logged.value[logged.metric == name]
        values[name] = float(series.iloc[-1]) if len(series) else math.nan
    return step, values
