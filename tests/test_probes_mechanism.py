"""The step decomposition g_adv = g + Hε + r against exact formulas: quadratics, a cubic, the Taylor term, the
direction parts of each optimizer's rule, both loss forms, other weights than the model's, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import batch_loss
from workbench.optim.rules import xsam_direction
from workbench.params import flatten
from workbench.probes import decompose_perturbed_gradient, direction_parts, taylor_remainder_along
from workbench.toy import make_landscape

from .conftest import exact_hessian, make_mlp_problem
from .probe_models import QUADRATIC_DATA, Quadratic, identity_loss
from .test_probes_eigenvalue_gradient import LandscapeModel

MATRIX = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, -0.5], [0.0, -0.5, 1.0]], dtype=torch.float64)


def test_a_quadratic_has_no_remainder():
    theta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    epsilon = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    parts = decompose_perturbed_gradient(Quadratic(MATRIX, theta), identity_loss, QUADRATIC_DATA, epsilon)
    torch.testing.assert_close(parts.gradient, MATRIX @ theta)
    torch.testing.assert_close(parts.second_order, MATRIX @ epsilon)
    torch.testing.assert_close(parts.remainder, torch.zeros(3, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(parts.adversarial_gradient, MATRIX @ (theta + epsilon))
    assert parts.loss == pytest.approx(0.5 * float(theta @ MATRIX @ theta))


def test_the_remainder_is_half_the_third_derivative_at_small_radius():
    landscape = make_landscape("gaussian_wells")
    theta = torch.tensor([-0.8, 0.3], dtype=torch.float64)
    model = LandscapeModel(landscape, theta)
    direction = torch.tensor([0.6, -0.8], dtype=torch.float64)
    third = landscape.third_derivative(theta)
    for radius in (1e-2, 1e-3):
        epsilon = radius * direction
        parts = decompose_perturbed_gradient(model, identity_loss, QUADRATIC_DATA, epsilon)
        torch.testing.assert_close(parts.second_order, landscape.hessian(theta) @ epsilon)
        expected = 0.5 * torch.einsum("ijk,i,j->k", third, epsilon, epsilon)
        # r = ½∇³L[ε, ε] + O(ε³): the relative error shrinks with the radius
        assert float((parts.remainder - expected).norm()) <= 20 * radius * float(expected.norm())


def test_taylor_term_is_the_aligned_part_of_the_remainder():
    epsilon = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ‖ε‖ = 5
    vector = torch.tensor([1.0, 0.0], dtype=torch.float64)  # cos∠(ε, v1) = 0.6
    gradient = torch.tensor([0.0, 2.0], dtype=torch.float64)
    assert taylor_remainder_along(epsilon, vector, gradient) == pytest.approx(0.5 * 25 * 0.36 * 2.0)
    assert taylor_remainder_along(epsilon, -vector, gradient) == pytest.approx(9.0)  # v1's sign does not matter


def test_direction_parts_add_up_for_sam_and_xsam():
    problem = make_mlp_problem(seed=4)
    params = list(problem.model.parameters())
    epsilon = 0.05 * torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    parts = decompose_perturbed_gradient(problem.model, problem.loss_fn, (problem.inputs, problem.targets), epsilon)
    sam = direction_parts(lambda g, g_adv: g_adv, parts)
    torch.testing.assert_close(sam.gradient, parts.gradient)
    torch.testing.assert_close(sam.second_order, parts.second_order)
    torch.testing.assert_close(sam.remainder, parts.remainder)
    vector = torch.linalg.eigh(problem.hessian).eigenvectors[:, -1]
    rule = lambda g, g_adv: xsam_direction(g_adv, vector, alpha=0.5, angle_gate=False, normalize=True)  # noqa: E731
    xsam = direction_parts(rule, parts)
    torch.testing.assert_close(xsam.direction, rule(parts.gradient, parts.adversarial_gradient))
    hessian_epsilon = problem.hessian @ epsilon
    torch.testing.assert_close(parts.second_order, hessian_epsilon)


def test_both_loss_forms_agree_and_other_weights_leave_the_model_alone():
    problem = make_mlp_problem(seed=5)
    model, data = problem.model.train(), (problem.inputs, problem.targets)
    n = problem.hessian.shape[0]
    weights = flatten([p.detach() for p in model.parameters()]).clone()
    epsilon = 0.03 * torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    first = decompose_perturbed_gradient(model, problem.loss_fn, data, epsilon)
    second = decompose_perturbed_gradient(
        model, batch_loss(lambda net, batch: F.cross_entropy(net(batch[0]), batch[1])), data, epsilon
    )
    torch.testing.assert_close(first.remainder, second.remainder)
    moved = decompose_perturbed_gradient(model, problem.loss_fn, data, epsilon, at=weights + 0.1)
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for param in shifted.parameters():
            param.add_(0.1)
    torch.testing.assert_close(moved.second_order, exact_hessian(shifted, problem.loss_fn, *data) @ epsilon)
    assert torch.equal(flatten([p.detach() for p in model.parameters()]), weights)
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ["perturbation", "at"])
def test_vectors_of_the_wrong_size_are_named(name):
    problem = make_mlp_problem()
    n = problem.hessian.shape[0]
    arguments = {"perturbation": torch.zeros(n), "at": None, name: torch.zeros(n + 1)}
    with pytest.raises(ValueError, match=f"{name} must be a flat tensor of shape \\({n},\\)"):
        decompose_perturbed_gradient(problem.model, problem.loss_fn, (problem.inputs, problem.targets), **arguments)
