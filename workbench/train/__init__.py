"""Training engine: config, the Trainer loop with scheduled probes, history, control and checkpoints."""

from workbench.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from workbench.train.history import History
from workbench.train.optimizers import optimizer_options
from workbench.train.trainer import Trainer, TrainEvent, TrainResult

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "History",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "Trainer",
    "optimizer_options",
]
