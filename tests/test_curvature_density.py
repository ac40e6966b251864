"""Stochastic Lanczos quadrature: a probability measure whose moments are the spectrum's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.curvature import DenseOperator, HessianOperator, spectral_density
from workbench.curvature.random import unit_gaussian


def test_weights_sum_to_one_and_the_density_integrates_to_one(cnn_problem):
    op = HessianOperator(cnn_problem.model, F.cross_entropy, (cnn_problem.inputs, cnn_problem.targets))
    result = spectral_density(op, num_runs=6, lanczos_steps=30)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, rtol=1e-10)
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-3)
    assert result.num_hvps == 6 * 30 == op.num_hvps


def test_quadrature_is_exact_for_low_degree_polynomials(mlp_problem):
    """Σ wᵢ θᵢᵖ = vᵀ Hᵖ v for p < 2·steps, for each run's own start vector v."""
    steps, runs, seed = 8, 3, 11
    op = DenseOperator(mlp_problem.hessian)
    result = spectral_density(op, num_runs=runs, lanczos_steps=steps, seed=seed)
    starts = unit_gaussian(runs, op.num_params, torch.Generator().manual_seed(seed), mlp_problem.hessian)
    for power in range(2 * steps):
        quadratic = (starts @ torch.linalg.matrix_power(mlp_problem.hessian, power) * starts).sum(dim=1)
        quadrature = (result.weights * result.nodes**power).sum(axis=1)
        np.testing.assert_allclose(quadrature, quadratic.numpy(), rtol=1e-7, atol=1e-12 * 2**power)


def test_moments_match_the_exact_spectrum(cnn_problem):
    op = HessianOperator(cnn_problem.model, F.cross_entropy, (cnn_problem.inputs, cnn_problem.targets))
    result = spectral_density(op, num_runs=40, lanczos_steps=25, seed=2)
    eigenvalues = torch.linalg.eigvalsh(cnn_problem.hessian).numpy()
    for power in (1, 2, 3):
        per_run = (result.weights * result.nodes**power).sum(axis=1)
        stderr = per_run.std(ddof=1) / np.sqrt(len(per_run))
        assert abs(result.moment(power) - np.mean(eigenvalues**power)) < 4 * stderr, power
    assert result.nodes.max() == pytest.approx(eigenvalues.max(), rel=1e-6)  # extremes converge first


def test_full_length_runs_recover_the_eigenvalues():
    spectrum = torch.tensor([4.0, 1.0, 0.5, -2.0], dtype=torch.float64)
    result = spectral_density(DenseOperator(torch.diag(spectrum)), num_runs=2, lanczos_steps=10)
    for run in range(2):
        used = result.weights[run] > 0
        np.testing.assert_allclose(np.sort(result.nodes[run][used]), np.sort(spectrum.numpy()), atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_runs": 0}, "num_runs must be an integer >= 1"),
        ({"lanczos_steps": 0}, "lanczos_steps must be an integer >= 1"),
        ({"sigma": 0.0}, "sigma must be in"),
        ({"grid_size": 1}, "grid_size must be an integer >= 2"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spectral_density(DenseOperator(torch.eye(3, dtype=torch.float64)), **kwargs)
