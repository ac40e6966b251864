"""Probes of SAM geometry: angles, sharpness measures, landscape directions and slices."""

from workbench.probes.angles import angle_degrees, cosine
from workbench.probes.directions import (
    TrajectoryPCA,
    filter_normalize,
    hessian_eigen_directions,
    random_filter_normalized_direction,
    trajectory_pca_directions,
)
from workbench.probes.landscape import LossSlice1D, LossSlice2D, loss_slice_1d, loss_slice_2d
from workbench.probes.sharpness import (
    AverageCaseSharpness,
    WorstCaseSharpness,
    adaptive_worst_case_sharpness,
    average_case_sharpness,
    lambda_max,
    trace_of_hessian,
    worst_case_sharpness,
)

__all__ = [
    "AverageCaseSharpness",
    "LossSlice1D",
    "LossSlice2D",
    "TrajectoryPCA",
    "WorstCaseSharpness",
    "adaptive_worst_case_sharpness",
    "angle_degrees",
    "average_case_sharpness",
    "cosine",
    "filter_normalize",
    "hessian_eigen_directions",
    "lambda_max",
    "loss_slice_1d",
    "loss_slice_2d",
    "random_filter_normalized_direction",
    "trace_of_hessian",
    "trajectory_pca_directions",
    "worst_case_sharpness",
]
