"""Stochastic trace estimation: Hutchinson (Rademacher probes) and Hutch++ (Meyer, Musco, Musco & Woodruff 2021).

Hutch++ spends a third of its products on a sketch Q of the dominant range of H, computes tr(QᵀHQ) exactly,
and runs Hutchinson only on the deflated remainder (I−QQᵀ)H(I−QQᵀ). When a few large eigenvalues carry much
of the trace (typical of network Hessians), the remainder's variance is far smaller than H's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench._checks import check_choice, check_int
from workbench.curvature.linear import SymmetricOperator
from workbench.curvature.random import rademacher

TRACE_METHODS = ("hutch++", "hutchinson")


@dataclass(frozen=True)
class TraceResult:
    """A trace estimate.

    Attributes:
        estimate: the estimate of tr(H) (units of H's eigenvalues).
        stderr: its standard error, from the sample variance of the random part.
        num_hvps: Hessian-vector products used.
        method: ``"hutch++"`` or ``"hutchinson"``.
        exact_part: for Hutch++, tr(QᵀHQ) over the sketch (0 for Hutchinson).
        samples: the per-probe estimates of tr(H), one per random probe, whose mean is ``estimate`` and whose
            spread gives ``stderr``: zᵀHz for Hutchinson, tr(QᵀHQ) + zᵀ(I−QQᵀ)H(I−QQᵀ)z for Hutch++.
    """

    estimate: float
    stderr: float
    num_hvps: int
    method: str
    exact_part: float = 0.0
    samples: tuple[float, ...] = ()


def hessian_trace(
    op: SymmetricOperator, *, method: str = "hutch++", num_samples: int = 99, seed: int = 0
) -> TraceResult:
    """Estimate tr(H) with ``num_samples`` Hessian-vector products.

    Args:
        op: a ``HessianOperator`` or any ``SymmetricOperator``.
        method: ``"hutch++"`` (needs ``num_samples >= 6``; a third sketches, a third projects, a third probes the
            remainder) or ``"hutchinson"`` (needs ``num_samples >= 2``).
        num_samples: total HVP budget.
        seed: seed of the Rademacher probes.

    Raises:
        ValueError: for an unknown method or a budget below the method's minimum.
    """
    check_choice("method", method, TRACE_METHODS)
    minimum = 6 if method == "hutch++" else 2
    num_samples = check_int("num_samples", num_samples, minimum=minimum)
    generator = torch.Generator().manual_seed(seed)
    like = torch.empty(0, device=op.device, dtype=op.dtype)
    if method == "hutchinson":
        probes = rademacher(num_samples, op.num_params, generator, like)
        samples = (probes * op.batched_matvec(probes)).sum(dim=1).double()
        return TraceResult(
            float(samples.mean()), _stderr(samples), num_samples, method, samples=tuple(samples.tolist())
        )
    return _hutch_plus_plus(op, num_samples, generator, like)


def _hutch_plus_plus(op: SymmetricOperator, budget: int, generator: torch.Generator, like: torch.Tensor) -> TraceResult:
    sketch_size = budget // 3
    remainder_size = budget - 2 * sketch_size
    n = op.num_params
    sketch = op.batched_matvec(rademacher(sketch_size, n, generator, like))
    basis = torch.linalg.qr(sketch.T).Q.T  # (s, n) orthonormal rows spanning H·S
    exact_part = float((basis * op.batched_matvec(basis)).sum().double())
    probes = rademacher(remainder_size, n, generator, like)
    deflated = probes - (probes @ basis.T) @ basis
    samples = (deflated * op.batched_matvec(deflated)).sum(dim=1).double()
    return TraceResult(
        exact_part + float(samples.mean()),
        _stderr(samples),
        budget,
        "hutch++",
        exact_part,
        tuple((exact_part + samples).tolist()),
    )


def _stderr(samples: torch.Tensor) -> float:
    return float(samples.std(unbiased=True)) / math.sqrt(samples.numel())
