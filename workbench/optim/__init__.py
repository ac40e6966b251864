"""Sharpness-aware optimizers: SAM, ASAM, Eigen-SAM and X-SAM on one two-pass step, with an eigen-tracker."""

from workbench.optim.eigen_sam import EigenSAM
from workbench.optim.record import StepRecord
from workbench.optim.sam import ASAM, SAM
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.tracker import EigenTracker
from workbench.optim.xsam import XSAM

__all__ = ["ASAM", "SAM", "XSAM", "EigenSAM", "EigenTracker", "SharpnessAware", "StepRecord"]
