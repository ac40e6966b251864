"""Sharpness probes against closed forms on quadratics, against the curvature engine, and model integrity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import nn

from workbench.curvature import HessianOperator, hessian_trace, top_eigenpairs
from workbench.probes import (
    adaptive_worst_case_sharpness,
    average_case_sharpness,
    lambda_max,
    trace_of_hessian,
    worst_case_sharpness,
)

from .probe_models import QUADRATIC_DATA, Quadratic, conv_net_in_train_mode, identity_loss


def _spd_matrix(eigenvalues: list[float], seed: int) -> torch.Tensor:
    n = len(eigenvalues)
    rotation = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).Q
    return rotation @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ rotation.T


def _trust_region_max(gradient: torch.Tensor, matrix: torch.Tensor, rho: float) -> float:
    """max gᵀδ + ½δᵀAδ over ‖δ‖ ≤ ρ for A ≻ 0: δ = (μI − A)⁻¹g with μ > λ1 and ‖δ‖ = ρ (secular equation)."""
    values, vectors = np.linalg.eigh(matrix.numpy())
    g = vectors.T @ gradient.numpy()

    def excess(mu: float) -> float:
        return float(np.sum((g / (mu - values)) ** 2)) - rho**2

    top = values[-1]
    mu = brentq(excess, top + 1e-12 * max(1.0, top), top + np.linalg.norm(g) / rho + 1.0, xtol=1e-15, rtol=1e-15)
    delta = g / (mu - values)
    return float(g @ delta + 0.5 * np.sum(values * delta**2))


def _quadratic(eigenvalues: list[float], theta_seed: int | None) -> Quadratic:
    matrix = _spd_matrix(eigenvalues, seed=3)
    n = len(eigenvalues)
    if theta_seed is None:
        theta = torch.zeros(n, dtype=torch.float64)
    else:
        theta = torch.randn(n, generator=torch.Generator().manual_seed(theta_seed), dtype=torch.float64)
    return Quadratic(matrix, theta)


EIGENVALUES = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1]


def test_worst_case_at_a_minimum_is_half_rho_squared_lambda_max():
    model = _quadratic(EIGENVALUES, theta_seed=None)
    rho = 0.3
    result = worst_case_sharpness(model, identity_loss, QUADRATIC_DATA, rho=rho, steps=60)
    exact = 0.5 * rho**2 * EIGENVALUES[0]
    assert result.value == pytest.approx(exact, rel=1e-9)
    assert result.value <= exact * (1 + 1e-12)  # a feasible point: never above the maximum
    assert float(result.perturbation.norm()) == pytest.approx(rho, rel=1e-12)
    top = torch.linalg.eigh(model.matrix).eigenvectors[:, -1]
    assert abs(float(result.perturbation @ top)) == pytest.approx(rho, rel=1e-6)
    assert result.base_loss == 0.0 and result.num_gradients == 60 and len(result.history) == 60


def test_worst_case_first_step_is_sam_and_ascent_reaches_the_trust_region_maximum():
    model = _quadratic(EIGENVALUES, theta_seed=5)
    matrix, theta = model.matrix, model.theta.detach()
    gradient = matrix @ theta
    rho = 0.4
    result = worst_case_sharpness(model, identity_loss, QUADRATIC_DATA, rho=rho, steps=80)
    unit = gradient / gradient.norm()
    sam = rho * float(gradient.norm()) + 0.5 * rho**2 * float(unit @ matrix @ unit)
    assert result.one_step == pytest.approx(sam, rel=1e-12)
    assert result.history[0] == result.one_step
    assert result.value == pytest.approx(_trust_region_max(gradient, matrix, rho), rel=1e-9)
    assert result.value > result.one_step


def test_adaptive_worst_case_is_the_trust_region_problem_in_scaled_coordinates():
    model = _quadratic(EIGENVALUES, theta_seed=7)
    matrix, theta = model.matrix, model.theta.detach()
    rho, eta = 0.5, 0.05
    scale = theta.abs() + eta
    gradient = matrix @ theta
    result = adaptive_worst_case_sharpness(model, identity_loss, QUADRATIC_DATA, rho=rho, eta=eta, steps=80)
    epsilon = rho * scale**2 * gradient / (scale * gradient).norm()  # ASAM's perturbation
    asam = float(gradient @ epsilon + 0.5 * epsilon @ matrix @ epsilon)
    assert result.one_step == pytest.approx(asam, rel=1e-12)
    scaled = _trust_region_max(scale * gradient, scale[:, None] * matrix * scale[None, :], rho)
    assert result.value == pytest.approx(scaled, rel=1e-9)
    assert float((result.perturbation / scale).norm()) == pytest.approx(rho, rel=1e-12)
    assert result.adaptive


def test_average_case_on_an_isotropic_quadratic_is_exact():
    """With A = cI and antithetic pairs every sample is ½cρ² exactly, at any θ."""
    c, rho = 3.0, 0.2
    model = Quadratic(c * torch.eye(7, dtype=torch.float64), torch.linspace(-1, 1, 7, dtype=torch.float64))
    result = average_case_sharpness(model, identity_loss, QUADRATIC_DATA, rho=rho, num_samples=8)
    assert result.value == pytest.approx(0.5 * c * rho**2, rel=1e-12)
    assert result.stderr < 1e-12


def test_average_case_matches_half_rho_squared_mean_eigenvalue():
    model = _quadratic(EIGENVALUES, theta_seed=11)
    rho = 0.5
    exact = 0.5 * rho**2 * sum(EIGENVALUES) / len(EIGENVALUES)
    paired = average_case_sharpness(model, identity_loss, QUADRATIC_DATA, rho=rho, num_samples=400, seed=1)
    plain = average_case_sharpness(
        model, identity_loss, QUADRATIC_DATA, rho=rho, num_samples=400, seed=1, antithetic=False
    )
    for result in (paired, plain):
        assert abs(result.value - exact) < 4 * result.stderr
    assert paired.stderr < 0.2 * plain.stderr  # the linear term's variance is gone
    assert paired.stderr < 0.05 * exact


def test_average_case_does_not_depend_on_chunk_size_and_follows_the_seed():
    model = _quadratic(EIGENVALUES, theta_seed=2)
    kwargs = {"rho": 0.3, "num_samples": 10}
    reference = average_case_sharpness(model, identity_loss, QUADRATIC_DATA, **kwargs, seed=4, chunk_size=16)
    chunked = average_case_sharpness(model, identity_loss, QUADRATIC_DATA, **kwargs, seed=4, chunk_size=3)
    other = average_case_sharpness(model, identity_loss, QUADRATIC_DATA, **kwargs, seed=5)
    assert chunked.value == pytest.approx(reference.value, rel=1e-12)
    assert chunked.stderr == pytest.approx(reference.stderr, rel=1e-9)
    assert other.value != reference.value


def test_lambda_max_and_trace_equal_the_curvature_functions(cnn_problem):
    data = (cnn_problem.inputs, cnn_problem.targets)
    op = HessianOperator(cnn_problem.model, F.cross_entropy, data)
    probe = lambda_max(cnn_problem.model, F.cross_entropy, data, seed=3)
    direct = top_eigenpairs(op, k=1, seed=3)
    assert float(probe.eigenvalues[0]) == float(direct.eigenvalues[0])
    exact = float(torch.linalg.eigvalsh(cnn_problem.hessian)[-1])
    assert float(probe.eigenvalues[0]) == pytest.approx(exact, rel=1e-4)
    trace = trace_of_hessian(cnn_problem.model, F.cross_entropy, data, num_samples=30, seed=2)
    assert trace == hessian_trace(op, num_samples=30, seed=2)


def test_several_batches_equal_their_concatenation(mlp_problem):
    """The probes see the size-weighted mean loss: splitting the batch 15 + 25 changes nothing."""
    model, inputs, targets = mlp_problem.model, mlp_problem.inputs, mlp_problem.targets
    split = [(inputs[:15], targets[:15]), (inputs[15:], targets[15:])]
    for probe, kwargs in [
        (worst_case_sharpness, {"rho": 0.1, "steps": 4}),
        (adaptive_worst_case_sharpness, {"rho": 0.5, "steps": 3}),
        (average_case_sharpness, {"rho": 0.1, "num_samples": 6}),
    ]:
        whole = probe(model, F.cross_entropy, (inputs, targets), **kwargs)
        parts = probe(model, F.cross_entropy, split, **kwargs)
        assert parts.value == pytest.approx(whole.value, rel=1e-9, abs=1e-12)
        assert parts.base_loss == pytest.approx(whole.base_loss, rel=1e-12)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize(
    ("probe", "kwargs"),
    [
        (lambda_max, {}),
        (trace_of_hessian, {"num_samples": 9}),
        (worst_case_sharpness, {"rho": 0.05, "steps": 3}),
        (adaptive_worst_case_sharpness, {"rho": 0.5, "steps": 2}),
        (average_case_sharpness, {"rho": 0.05, "num_samples": 4}),
    ],
)
def test_probes_leave_the_model_exactly_as_they_found_it(probe, kwargs):
    model, inputs, targets = conv_net_in_train_mode(seed=4, samples=20)
    before = _state(model)
    batches = [(inputs[:10], targets[:10]), (inputs[10:], targets[10:])]
    probe(model, F.cross_entropy, batches, **kwargs)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(module.training for module in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_worst_case_sharpness_grows_with_rho_and_beats_one_step(mlp_problem):
    data = (mlp_problem.inputs, mlp_problem.targets)
    small = worst_case_sharpness(mlp_problem.model, F.cross_entropy, data, rho=0.05, steps=5)
    large = worst_case_sharpness(mlp_problem.model, F.cross_entropy, data, rho=0.2, steps=5)
    assert 0 < small.one_step <= small.value < large.value
    assert math.isclose(float(large.perturbation.norm()), 0.2, rel_tol=1e-9)


def test_bad_arguments_name_the_parameter(mlp_problem):
    model, data = mlp_problem.model, (mlp_problem.inputs, mlp_problem.targets)
    with pytest.raises(ValueError, match="rho"):
        worst_case_sharpness(model, F.cross_entropy, data, rho=0.0)
    with pytest.raises(ValueError, match="steps"):
        worst_case_sharpness(model, F.cross_entropy, data, rho=0.1, steps=0)
    with pytest.raises(ValueError, match="step_size"):
        worst_case_sharpness(model, F.cross_entropy, data, rho=0.1, step_size=-1.0)
    with pytest.raises(ValueError, match="eta"):
        adaptive_worst_case_sharpness(model, F.cross_entropy, data, rho=0.1, eta=-0.1)
    with pytest.raises(ValueError, match="num_samples"):
        average_case_sharpness(model, F.cross_entropy, data, rho=0.1, num_samples=1)
    with pytest.raises(ValueError, match="chunk_size"):
        average_case_sharpness(model, F.cross_entropy, data, rho=0.1, chunk_size=0)
    with pytest.raises(ValueError, match="rho"):
        average_case_sharpness(model, F.cross_entropy, data, rho=math.inf)
