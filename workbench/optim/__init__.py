"""Optimizers: SAM, ASAM, Eigen-SAM and X-SAM on one two-pass step with an eigen-tracker, the base optimizer alone
behind the same interface (``PlainStep``), the registry every consumer reads them from, and davda54/sam's BatchNorm
helpers (``disable_running_stats`` / ``enable_running_stats``)."""

from workbench.optim.eigen_sam import EigenSAM
from workbench.optim.plain import PlainStep
from workbench.optim.record import StepRecord
from workbench.optim.registry import OPTIMIZER_NAMES, OPTIMIZERS, OptimizerEntry, optimizer_entry
from workbench.optim.running_stats import disable_running_stats, enable_running_stats
from workbench.optim.sam import ASAM, SAM
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.tracker import EigenTracker
from workbench.optim.wrapped import WrappedOptimizer
from workbench.optim.xsam import XSAM

__all__ = [
    "ASAM",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "SAM",
    "XSAM",
    "EigenSAM",
    "EigenTracker",
    "OptimizerEntry",
    "PlainStep",
    "SharpnessAware",
    "StepRecord",
    "WrappedOptimizer",
    "disable_running_stats",
    "enable_running_stats",
    "optimizer_entry",
]
