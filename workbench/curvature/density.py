"""Spectral density by stochastic Lanczos quadrature (SLQ; Golub & Meurant, Ghorbani et al. 2019).

Each run starts Lanczos from a random unit vector v; the Ritz values θᵢ of its tridiagonal matrix are
quadrature nodes and the squared first components of its eigenvectors the weights, so that
Σᵢ wᵢ f(θᵢ) = vᵀ f(H) v exactly for every polynomial f of degree < 2·steps. Averaged over runs this is an
unbiased estimate of tr f(H) / n: a probability measure (weights sum to 1) approximating the spectrum.
The runs go through the operator together, one vectorised HVP per Lanczos step for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench._checks import check_float, check_int
from workbench.curvature.linear import SymmetricOperator
from workbench.curvature.random import unit_gaussian


@dataclass(frozen=True)
class SpectralDensity:
    """An SLQ estimate of the eigenvalue density.

    Attributes:
        nodes: ``(runs, steps)`` Ritz values (units of H's eigenvalues); unused slots of runs that ended
            early (an invariant subspace) hold weight 0.
        weights: ``(runs, steps)``, each row summing to 1.
        grid: ``(grid_size,)`` eigenvalue axis of the smoothed density.
        density: ``(grid_size,)`` Gaussian-smoothed density on ``grid``, integrating to about 1.
        sigma: the Gaussian kernel's width (units of eigenvalues).
        num_hvps: Hessian-vector products used.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    num_hvps: int

    def moment(self, power: int) -> float:
        """The estimate of tr(Hᵖ)/n, the p-th moment of the spectral measure."""
        return float(np.sum(self.weights * self.nodes.astype(np.float64) ** power) / self.weights.shape[0])


def spectral_density(
    op: SymmetricOperator,
    *,
    num_runs: int = 10,
    lanczos_steps: int = 80,
    seed: int = 0,
    sigma: float | None = None,
    grid_size: int = 1000,
) -> SpectralDensity:
    """Estimate the spectral density of ``op`` by ``num_runs`` Lanczos runs of ``lanczos_steps`` steps.

    Args:
        op: a ``HessianOperator`` or any ``SymmetricOperator`` of size n.
        num_runs: random start vectors; the density is their average.
        lanczos_steps: Krylov dimension per run (capped at n); memory is ``num_runs · steps · n`` values.
        seed: seed of the start vectors.
        sigma: width of the Gaussian kernel; default 1 % of the spread of the nodes.
        grid_size: points of the density grid, which spans the nodes ± 5σ.

    Raises:
        ValueError: for non-positive counts or a non-positive sigma.
    """
    num_runs = check_int("num_runs", num_runs, minimum=1)
    steps = min(check_int("lanczos_steps", lanczos_steps, minimum=1), op.num_params)
    grid_size = check_int("grid_size", grid_size, minimum=2)
    if sigma is not None:
        check_float("sigma", sigma, minimum=0.0, min_inclusive=False)
    like = torch.empty(0, device=op.device, dtype=op.dtype)
    start = unit_gaussian(num_runs, op.num_params, torch.Generator().manual_seed(seed), like)
    alphas, betas, lengths = _batched_lanczos(op, start, steps)
    nodes = np.zeros((num_runs, steps))
    weights = np.zeros((num_runs, steps))
    for run in range(num_runs):
        length = lengths[run]
        tridiagonal = (
            np.diag(alphas[run, :length]) + np.diag(betas[run, : length - 1], 1) + np.diag(betas[run, : length - 1], -1)
        )
        theta, vectors = np.linalg.eigh(tridiagonal)
        nodes[run, :length] = theta
        weights[run, :length] = vectors[0] ** 2
    used = weights > 0
    low, high = float(nodes[used].min()), float(nodes[used].max())
    width = sigma if sigma is not None else max(0.01 * (high - low), 1e-12 * max(1.0, abs(high)))
    grid = np.linspace(low - 5 * width, high + 5 * width, grid_size)
    kernel = np.exp(-0.5 * ((grid[:, None] - nodes[used][None, :]) / width) ** 2) / (width * np.sqrt(2 * np.pi))
    density = kernel @ weights[used] / num_runs
    return SpectralDensity(nodes, weights, grid, density, float(width), num_runs * int(max(lengths)))


def _batched_lanczos(
    op: SymmetricOperator, start: torch.Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Lanczos with full reorthogonalisation for each row of ``start`` ``(runs, n)``, all runs per HVP call.

    Returns the diagonals ``(runs, steps)``, off-diagonals ``(runs, steps)`` and each run's length (shorter
    when the run reaches an invariant subspace).
    """
    runs, n = start.shape
    basis = torch.zeros(runs, steps, n, device=op.device, dtype=op.dtype)
    alphas = np.zeros((runs, steps))
    betas = np.zeros((runs, steps))
    lengths = [steps] * runs
    active = torch.ones(runs, dtype=torch.bool)
    basis[:, 0] = start
    for j in range(steps):
        rows = active.nonzero().flatten()
        current = basis[rows, j]
        product = op.batched_matvec(current)
        alpha = (current * product).sum(dim=1)
        alphas[rows.numpy(), j] = alpha.double().cpu().numpy()
        for _ in range(2):  # full reorthogonalisation against the run's whole basis, twice
            known = basis[rows, : j + 1]
            product = product - torch.einsum("rj,rjn->rn", torch.einsum("rjn,rn->rj", known, product), known)
        beta = product.norm(dim=1)
        betas[rows.numpy(), j] = beta.double().cpu().numpy()
        if j + 1 == steps:
            break
        scale = alpha.abs().clamp_min(1.0)
        ended = (beta <= 1e-10 * scale).cpu()
        for run in rows[ended].tolist():
            lengths[run] = j + 1
        active[rows[ended]] = False
        keep = ~ended.to(product.device)
        basis[rows[ended.logical_not()], j + 1] = product[keep] / beta[keep, None]
        if not active.any():
            break
    return alphas, betas, lengths
