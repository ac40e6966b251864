"""An optional TensorBoard sink: the same scalars the run's history logs, as TensorBoard event files.

The run folder's tidy ``history.csv`` stays the source of truth; this sink mirrors it for people who watch runs in
TensorBoard (as Lightning and Hugging Face trainers do with their loggers). It is a Trainer callback: every value of
a "step", "probe" and "eval" event (the rows the history logs at that step: losses, accuracies, λ1, trace, angles,
ε norm, ...) becomes a scalar with the metric's history name as its tag; the run's hyperparameters are written once
at the start, declaring the final metrics (``final/<name>``) that are written when the run ends (TensorBoard's
HPARAMS tab compares runs by them).

It needs the ``tensorboard`` package (``pip install "workbench[tensorboard]"``); nothing in the core imports it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from workbench.train.config import TrainConfig

#: Trainer events whose values are history rows.
LOGGED_EVENTS = ("step", "probe", "eval")


class TensorBoardSink:
    """Write a run's scalars to TensorBoard event files in ``log_dir``; call it with every ``TrainEvent``.

    Args:
        log_dir: the folder for the event files (created).
        config: the run's config, written as hyperparameters (options as text, numbers as numbers).
        final_metrics: the names of the metrics the "end" event carries (the run's headline numbers).

    Raises:
        ImportError: naming the extra to install when the ``tensorboard`` package is missing.
    """

    def __init__(self, log_dir: str | Path, config: TrainConfig, final_metrics: tuple[str, ...]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:  # torch raises this when the tensorboard package is absent
            raise ImportError(
                'tensorboard=True needs the tensorboard package: pip install "workbench[tensorboard]"'
            ) from error
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.hyperparameters = _hyperparameters(config)
        self.final_metrics = tuple(f"final/{name}" for name in final_metrics)

    def __call__(self, event: Any) -> None:
        """Mirror one ``TrainEvent``: scalars for logged events, hyperparameters at the start, final metrics at the
        end (then the file is closed), a flush at a pause."""
        if event.kind in LOGGED_EVENTS:
            step = event.step - 1 if event.kind == "step" else event.step  # a "step" event comes after the step
            for name, value in event.values.items():
                self.writer.add_scalar(name, value, global_step=step)
        elif event.kind == "start":
            self._write_hyperparameters()
        elif event.kind == "end":
            for name, value in event.values.items():
                if math.isfinite(value):
                    self.writer.add_scalar(f"final/{name}", value, global_step=event.step)
            self.writer.close()
        elif event.kind == "pause":
            self.writer.flush()

    def _write_hyperparameters(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(self.hyperparameters, dict.fromkeys(self.final_metrics, 0.0))
        file_writer = self.writer._get_file_writer()  # SummaryWriter has no public call for the three summaries
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)


def _hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The config as TensorBoard hyperparameters: numbers and text as they are, other values (None, tuples,
    dicts) as their text."""
    return {
        name: value if isinstance(value, bool | int | float | str) else str(value)
        for name, value in config.to_dict().items()
    }
