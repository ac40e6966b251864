"""SAM geometry workbench: curvature probes, sharpness-aware optimizers, training, notebooks and batches.

The public API, by layer (data flows one way: datasets → models → optimizers + probes → Trainer → history →
viz → ui / batch reports):

- curvature: ``HessianOperator``, ``top_eigenpairs``, ``hessian_trace``, ``spectral_density``, ...
- probes: angles, sharpness measures, loss-landscape directions and slices
- optim: ``SAM``, ``ASAM``, ``EigenSAM``, ``XSAM``
- compat: ``workbench.compat.hessian``, PyHessian's class on this engine (davda54/sam's usage is ``SAM``'s own)
- datasets / models: ``load_dataset``, ``build_model``
- losses: ``batch_loss`` marks a ``loss(model, batch)`` for batches of any structure
- train: ``TrainConfig``, ``Trainer``
"""

from workbench.curvature import (
    DenseOperator,
    EigenResult,
    GradientGraphOperator,
    HessianOperator,
    SpectralDensity,
    TraceResult,
    hessian_trace,
    power_iterate,
    ritz_refresh,
    spectral_density,
    top_eigenpairs,
)
from workbench.datasets import DATASETS, DatasetSplits, dataset_options, load_dataset
from workbench.losses import BatchLoss, batch_loss
from workbench.models import MODELS, build_model, model_options
from workbench.optim import ASAM, SAM, XSAM, EigenSAM, EigenTracker, SharpnessAware, StepRecord
from workbench.probes import (
    angle_degrees,
    average_case_sharpness,
    cosine,
    hessian_eigen_directions,
    lambda_max,
    loss_slice_1d,
    loss_slice_2d,
    random_filter_normalized_direction,
    trace_of_hessian,
    trajectory_pca_directions,
    worst_case_sharpness,
)
from workbench.train import History, TrainConfig, Trainer, TrainResult

__version__ = "0.1.0"

__all__ = [
    "ASAM",
    "DATASETS",
    "MODELS",
    "SAM",
    "XSAM",
    "BatchLoss",
    "DatasetSplits",
    "DenseOperator",
    "EigenResult",
    "EigenSAM",
    "EigenTracker",
    "GradientGraphOperator",
    "HessianOperator",
    "History",
    "SharpnessAware",
    "SpectralDensity",
    "StepRecord",
    "TraceResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "__version__",
    "angle_degrees",
    "average_case_sharpness",
    "batch_loss",
    "build_model",
    "cosine",
    "dataset_options",
    "hessian_eigen_directions",
    "hessian_trace",
    "lambda_max",
    "load_dataset",
    "loss_slice_1d",
    "loss_slice_2d",
    "model_options",
    "power_iterate",
    "random_filter_normalized_direction",
    "ritz_refresh",
    "spectral_density",
    "top_eigenpairs",
    "trace_of_hessian",
    "trajectory_pca_directions",
    "worst_case_sharpness",
]
