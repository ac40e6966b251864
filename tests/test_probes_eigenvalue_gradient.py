"""∇θλ1: against finite differences of exact eigenvalues, closed forms on the toy landscapes, both loss forms,
both HVP engines, degenerate λ1, bad input, and a model left as it was."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.curvature import HessianOperator
from workbench.losses import batch_loss
from workbench.params import flatten, unflatten
from workbench.probes import DegenerateEigenvalueWarning, eigenvalue_gradient
from workbench.toy import make_landscape

from .conftest import exact_hessian, make_mlp_problem
from .probe_models import QUADRATIC_DATA, Quadratic, identity_loss


class LandscapeModel(nn.Module):
    """A toy landscape as a model: two parameters θ, the forward pass returns L(θ) (inputs ignored)."""

    def __init__(self, landscape, theta: torch.Tensor) -> None:
        super().__init__()
        self.landscape = landscape
        self.theta = nn.Parameter(theta.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.landscape.value(self.theta)


def top_eigenvalue(problem, flat: torch.Tensor) -> float:
    """λ1 of the exact Hessian at the flat weights ``flat`` (the model is restored afterwards)."""
    params = list(problem.model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for param, piece in zip(params, unflatten(flat, params), strict=True):
            param.copy_(piece)
    hessian = exact_hessian(problem.model, problem.loss_fn, problem.inputs, problem.targets)
    with torch.no_grad():
        for param, value in zip(params, saved, strict=True):
            param.copy_(value)
    return float(torch.linalg.eigvalsh(hessian)[-1])


def test_gradient_matches_central_differences_of_the_exact_top_eigenvalue():
    problem = make_mlp_problem(seed=1)
    result = eigenvalue_gradient(problem.model, problem.loss_fn, (problem.inputs, problem.targets), tol=1e-10)
    eigenvalues = torch.linalg.eigvalsh(problem.hessian)
    assert result.eigenvalue == pytest.approx(float(eigenvalues[-1]), rel=1e-10)
    assert result.second_eigenvalue == pytest.approx(float(eigenvalues[-2]), rel=1e-5)  # solved to GAP_TOL
    assert result.separated and result.converged and result.gradient.shape == (problem.hessian.shape[0],)
    base = flatten([p.detach() for p in problem.model.parameters()])
    generator = torch.Generator().manual_seed(0)
    step = 1e-5
    for _ in range(3):
        direction = torch.randn(base.shape, generator=generator, dtype=torch.float64)
        difference = top_eigenvalue(problem, base + step * direction) - top_eigenvalue(problem, base - step * direction)
        assert float(result.gradient @ direction) == pytest.approx(difference / (2 * step), rel=1e-6, abs=1e-9)


def test_both_loss_forms_and_both_engines_agree():
    problem = make_mlp_problem(seed=2)
    data = (problem.inputs, problem.targets)
    outputs_form = eigenvalue_gradient(problem.model, problem.loss_fn, data, tol=1e-10)
    model_form = eigenvalue_gradient(
        problem.model, batch_loss(lambda model, batch: F.cross_entropy(model(batch[0]), batch[1])), data, tol=1e-10
    )
    functional = eigenvalue_gradient(problem.model, problem.loss_fn, data, tol=1e-10, hvp="func")
    for other in (model_form, functional):
        torch.testing.assert_close(other.gradient, outputs_form.gradient, rtol=1e-8, atol=1e-12)


def test_third_order_product_over_several_batches_is_the_size_weighted_mean():
    problem = make_mlp_problem(seed=3, samples=30)
    vector = torch.randn(problem.hessian.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    whole = HessianOperator(problem.model, problem.loss_fn, (problem.inputs, problem.targets))
    parts = [(problem.inputs[:10], problem.targets[:10]), (problem.inputs[10:], problem.targets[10:])]
    split = HessianOperator(problem.model, problem.loss_fn, parts)
    torch.testing.assert_close(split.quadratic_form_gradient(vector), whole.quadratic_form_gradient(vector))
    assert whole.num_third_order == 1 and whole.num_hvps == 0


@pytest.mark.parametrize(("name", "params"), [("sharp_flat", {}), ("gaussian_wells", {}), ("curved_valley", {})])
def test_gradient_equals_the_closed_form_on_the_toy_landscapes(name, params):
    landscape = make_landscape(name, **params)
    generator = torch.Generator().manual_seed(0)
    (x_low, x_high), (y_low, y_high) = landscape.bounds
    checked = 0
    for _ in range(12):
        unit = torch.rand(2, generator=generator, dtype=torch.float64)
        theta = torch.stack([x_low + (x_high - x_low) * unit[0], y_low + (y_high - y_low) * unit[1]])
        model = LandscapeModel(landscape, theta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
            result = eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA, tol=1e-12)
        if not result.separated:
            continue
        checked += 1
        torch.testing.assert_close(result.gradient, landscape.top_eigenvalue_gradient(theta), rtol=1e-7, atol=1e-9)
    assert checked >= 6


def test_a_quadratic_has_zero_gradient():
    matrix = torch.diag(torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64))
    model = Quadratic(matrix, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64))
    result = eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA)
    assert result.eigenvalue == pytest.approx(5.0) and result.relative_gap == pytest.approx(0.6)
    assert float(result.gradient.abs().max()) == 0.0


def test_degenerate_top_eigenvalue_warns_fails_or_is_only_reported():
    matrix = torch.diag(torch.tensor([3.0, 3.0, 1.0], dtype=torch.float64))
    model = Quadratic(matrix, torch.ones(3, dtype=torch.float64))
    with pytest.warns(DegenerateEigenvalueWarning, match="not separated from λ2"):
        result = eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA)
    assert not result.separated and result.relative_gap == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="gradient of λ1 does not exist"):
        eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA, on_degenerate="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA, on_degenerate="ignore").separated


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tol": -1.0}, "tol must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"min_relative_gap": -0.1}, "min_relative_gap must be"),
        ({"on_degenerate": "skip"}, "on_degenerate must be one of"),
    ],
)
def test_bad_arguments_are_named(changes, message):
    problem = make_mlp_problem()
    with pytest.raises(ValueError, match=message):
        eigenvalue_gradient(problem.model, problem.loss_fn, (problem.inputs, problem.targets), **changes)


def test_a_single_parameter_has_no_second_eigenvalue():
    model = Quadratic(torch.ones(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 parameters"):
        eigenvalue_gradient(model, identity_loss, QUADRATIC_DATA)


def test_the_model_is_left_as_it_was():
    problem = make_mlp_problem()
    model = problem.model.train()
    before = [p.detach().clone() for p in model.parameters()]
    eigenvalue_gradient(model, problem.loss_fn, (problem.inputs, problem.targets))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
