"""SAM geometry workbench: curvature probes, sharpness-aware optimizers, training, notebooks and batches."""

from workbench.curvature import (
    DenseOperator,
    EigenResult,
    HessianOperator,
    SpectralDensity,
    TraceResult,
    hessian_trace,
    power_iterate,
    spectral_density,
    top_eigenpairs,
)

__version__ = "0.1.0"

__all__ = [
    "DenseOperator",
    "EigenResult",
    "HessianOperator",
    "SpectralDensity",
    "TraceResult",
    "__version__",
    "hessian_trace",
    "power_iterate",
    "spectral_density",
    "top_eigenpairs",
]
