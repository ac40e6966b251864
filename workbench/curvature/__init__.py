"""Curvature engine: exact Hessian-vector products, top-k eigenpairs, trace and spectral density."""

from workbench.curvature.density import SpectralDensity, spectral_density
from workbench.curvature.eigen import EigenResult, power_iterate, ritz_refresh, top_eigenpairs
from workbench.curvature.linear import DenseOperator, SymmetricOperator
from workbench.curvature.operator import GradientGraphOperator, HessianOperator, graph_hvp
from workbench.curvature.trace import TraceResult, hessian_trace

__all__ = [
    "DenseOperator",
    "EigenResult",
    "GradientGraphOperator",
    "HessianOperator",
    "SpectralDensity",
    "SymmetricOperator",
    "TraceResult",
    "graph_hvp",
    "hessian_trace",
    "power_iterate",
    "ritz_refresh",
    "spectral_density",
    "top_eigenpairs",
]
