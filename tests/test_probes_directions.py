"""Directions: filter-normalisation norms, seeded random directions, Hessian eigenvectors, trajectory PCA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.params import unflatten
from workbench.probes import (
    filter_normalize,
    hessian_eigen_directions,
    random_filter_normalized_direction,
    trajectory_pca_directions,
)

from .conftest import SmallConvNet


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(SmallConvNet(), nn.Linear(3, 5)).double()


def test_filter_normalized_direction_has_the_norm_of_each_filter():
    model = _model()
    params = list(model.parameters())
    direction = random_filter_normalized_direction(model, seed=3)
    assert direction.shape == (sum(p.numel() for p in params),) and direction.dtype == torch.float64
    checked = 0
    for piece, weight in zip(unflatten(direction, params), params, strict=True):
        if weight.dim() <= 1:  # biases and BatchNorm scale/shift
            assert torch.count_nonzero(piece) == 0
            continue
        filter_norms = piece.reshape(piece.shape[0], -1).norm(dim=1)
        weight_norms = weight.detach().reshape(weight.shape[0], -1).norm(dim=1)
        torch.testing.assert_close(filter_norms, weight_norms, rtol=1e-12, atol=0)
        checked += piece.shape[0]
    assert checked == 4 + 3 + 5  # conv filters, then the rows of both linear layers


def test_including_biases_and_norms_uses_their_values():
    model = _model()
    params = list(model.parameters())
    direction = random_filter_normalized_direction(model, seed=3, include_biases_and_norms=True)
    default = random_filter_normalized_direction(model, seed=3)
    for piece, base, weight in zip(unflatten(direction, params), unflatten(default, params), params, strict=True):
        torch.testing.assert_close(piece, weight.detach() if weight.dim() <= 1 else base, rtol=0, atol=0)


def test_filter_normalize_rescales_a_given_direction_without_turning_it():
    weight = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64)  # filter norms 5 and 2
    direction = torch.tensor([1.0, 1.0, 0.0, -3.0], dtype=torch.float64)
    result = filter_normalize(direction, [weight])
    expected = torch.tensor([5 / 2**0.5, 5 / 2**0.5, 0.0, -2.0], dtype=torch.float64)
    torch.testing.assert_close(result, expected, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="direction"):
        filter_normalize(torch.ones(3), [weight])


def test_random_directions_follow_the_seed():
    model = _model()
    first = random_filter_normalized_direction(model, seed=1)
    assert torch.equal(first, random_filter_normalized_direction(model, seed=1))
    assert not torch.equal(first, random_filter_normalized_direction(model, seed=2))


def test_hessian_eigen_directions_are_the_exact_top_eigenvectors(mlp_problem):
    data = (mlp_problem.inputs, mlp_problem.targets)
    result = hessian_eigen_directions(mlp_problem.model, F.cross_entropy, data, k=2)
    values, vectors = torch.linalg.eigh(mlp_problem.hessian)
    assert result.eigenvectors.shape == (2, values.numel())
    torch.testing.assert_close(result.eigenvalues, values.flip(0)[:2], rtol=1e-4, atol=0)
    cosines = (result.eigenvectors * vectors.flip(1)[:, :2].T).sum(dim=1).abs()
    assert bool((cosines > 0.9999).all()), cosines


def _planted_trajectory(extra: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """θᵢ = θ_final + aᵢ·u + bᵢ·w (+ extra·cᵢ·z): a spiral into θ_final in a random plane of R^40."""
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(40, 3, generator=generator, dtype=torch.float64)).Q.T  # u, w, z
    final = torch.randn(40, generator=generator, dtype=torch.float64)
    t = torch.linspace(0, 3, 30, dtype=torch.float64)
    coefficients = torch.stack([3 * torch.exp(-t) * torch.cos(4 * t), torch.exp(-t) * torch.sin(4 * t)], dim=1)
    coefficients[-1] = 0.0  # the trajectory ends at θ_final
    wobble = extra * torch.sin(9 * t) * torch.exp(-t)
    wobble[-1] = 0.0
    snapshots = final + coefficients @ basis[:2] + wobble[:, None] * basis[2]
    return snapshots, basis, coefficients, final


def test_pca_recovers_a_planted_plane_and_the_coordinates():
    snapshots, basis, coefficients, _ = _planted_trajectory()
    result = trajectory_pca_directions(snapshots)
    plane = basis[:2]
    torch.testing.assert_close((result.directions @ plane.T).norm(dim=1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(result.directions @ result.directions.T, torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(result.coordinates @ result.directions, coefficients @ plane, rtol=0, atol=1e-12)
    expected_ratio = torch.linalg.svdvals(coefficients) ** 2 / (coefficients**2).sum()
    torch.testing.assert_close(result.explained_variance_ratio, expected_ratio, rtol=1e-10, atol=0)
    assert float(result.explained_variance_ratio.sum()) == pytest.approx(1.0, abs=1e-12)
    assert bool((result.coordinates[0] >= 0).all())
    assert result.coordinates[-1].abs().max() < 1e-12


def test_pca_of_a_noisy_trajectory_keeps_the_dominant_plane_and_accepts_lists():
    snapshots, basis, _, final = _planted_trajectory(extra=0.05)
    as_lists = [[row[:25], row[25:]] for row in snapshots]
    result = trajectory_pca_directions(as_lists, final=[final[:25], final[25:]])
    assert float(result.explained_variance_ratio.sum()) < 1.0
    assert float((result.directions @ basis[:2].T).norm(dim=1).min()) > 0.99


def test_pca_rejects_what_it_cannot_decompose():
    line = torch.outer(torch.linspace(1, 0, 5, dtype=torch.float64), torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_components must be in \\[1, 1\\]"):
        trajectory_pca_directions(line)
    assert trajectory_pca_directions(line, num_components=1).directions.shape == (1, 6)
    with pytest.raises(ValueError, match="at least 2"):
        trajectory_pca_directions([torch.zeros(3)])
    with pytest.raises(ValueError, match="same number of elements"):
        trajectory_pca_directions([torch.zeros(3), torch.zeros(4)])
    with pytest.raises(ValueError, match="no trajectory"):
        trajectory_pca_directions(torch.ones(4, 3))
    with pytest.raises(ValueError, match="final must have 6 elements"):
        trajectory_pca_directions(line, final=torch.zeros(5), num_components=1)
