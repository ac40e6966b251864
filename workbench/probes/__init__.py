"""Probes of SAM geometry: angles, sharpness measures, the gradient of λ1, landscape directions and slices."""

from workbench.probes.angles import angle_degrees, cosine
from workbench.probes.directions import (
    TrajectoryPCA,
    filter_normalize,
    hessian_eigen_directions,
    random_filter_normalized_direction,
    trajectory_pca_directions,
)
from workbench.probes.eigenvalue_gradient import DegenerateEigenvalueWarning, EigenvalueGradient, eigenvalue_gradient
from workbench.probes.landscape import LossSlice1D, LossSlice2D, loss_slice_1d, loss_slice_2d
from workbench.probes.mechanism import (
    DirectionParts,
    PerturbedGradient,
    decompose_perturbed_gradient,
    direction_parts,
    taylor_remainder_along,
)
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
    "DegenerateEigenvalueWarning",
    "DirectionParts",
    "EigenvalueGradient",
    "LossSlice1D",
    "LossSlice2D",
    "PerturbedGradient",
    "TrajectoryPCA",
    "WorstCaseSharpness",
    "adaptive_worst_case_sharpness",
    "angle_degrees",
    "average_case_sharpness",
    "cosine",
    "decompose_perturbed_gradient",
    "direction_parts",
    "eigenvalue_gradient",
    "filter_normalize",
    "hessian_eigen_directions",
    "lambda_max",
    "loss_slice_1d",
    "loss_slice_2d",
    "random_filter_normalized_direction",
    "taylor_remainder_along",
    "trace_of_hessian",
    "trajectory_pca_directions",
    "worst_case_sharpness",
]
