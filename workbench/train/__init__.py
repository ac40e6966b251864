"""Training engine: config, the Trainer loop with scheduled probes, history, control and checkpoints."""

from workbench.train.config import RHO_SCHEDULES, SCHEDULES, TrainConfig
from workbench.train.history import History
from workbench.train.optimizers import build_optimizer
from workbench.train.trainer import Trainer, TrainEvent, TrainResult

__all__ = [
    "RHO_SCHEDULES",
    "SCHEDULES",
    "History",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "Trainer",
    "build_optimizer",
]
