"""workbench.compat.hessian against PyHessian (the same calls on the same model and data) and exact Hessians."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.compat import hessian

from .conftest import Problem, exact_hessian, make_cnn_problem, make_mlp_problem

pyhessian = pytest.importorskip("pyhessian")
# PyHessian's own constructor calls loss.backward(create_graph=True), which torch warns about
pytestmark = pytest.mark.filterwarnings(r"ignore:Using backward\(\) with create_graph=True:UserWarning")

PROBLEMS = {"mlp": make_mlp_problem, "cnn": make_cnn_problem}


@pytest.fixture(params=list(PROBLEMS))
def fresh_problem(request: pytest.FixtureRequest) -> Problem:
    """A new problem per test: PyHessian leaves the model in eval mode with graph-carrying gradients."""
    return PROBLEMS[request.param]()


def both(problem: Problem) -> tuple[hessian, object]:
    """Ours and PyHessian's, built the same way (PyHessian's random vectors come from torch's global generator)."""
    data = (problem.inputs, problem.targets)
    torch.manual_seed(0)
    ours = hessian(problem.model, F.cross_entropy, data=data, cuda=False)
    theirs = pyhessian.hessian(problem.model, F.cross_entropy, data=data, cuda=False)
    return ours, theirs


def exact_spectrum(problem: Problem) -> np.ndarray:
    return torch.linalg.eigvalsh(problem.hessian).flip(0).numpy()


def assert_eigenvector_layout(vectors: list, params: list[torch.Tensor], count: int) -> None:
    assert isinstance(vectors, list) and len(vectors) == count
    for vector in vectors:
        assert isinstance(vector, list | tuple) and len(vector) == len(params)
        assert [tuple(piece.shape) for piece in vector] == [tuple(p.shape) for p in params]
        assert math.isclose(math.sqrt(sum(float((piece**2).sum()) for piece in vector)), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_eigenvalues_same_calls_same_shapes_exact_to_tolerance(fresh_problem, tol):
    exact = exact_spectrum(fresh_problem)
    ours, theirs = both(fresh_problem)
    values, vectors = ours.eigenvalues(tol=tol, top_n=2)
    their_values, their_vectors = theirs.eigenvalues(tol=tol, top_n=2)
    fresh_problem.model.zero_grad(set_to_none=True)

    params = list(fresh_problem.model.parameters())
    for found, layout in ((values, vectors), (their_values, their_vectors)):
        assert isinstance(found, list) and len(found) == 2 and all(isinstance(value, float) for value in found)
        assert_eigenvector_layout(layout, params, 2)

    # ours: the guarantee the docstring states, |λ − λ_exact| ≤ tol·|λ|, and within 1e-6 of exact at tol 1e-6
    errors = np.abs(np.array(values) - exact[:2])
    assert np.all(errors <= tol * np.abs(exact[:2]))
    if tol <= 1e-6:
        assert np.all(errors <= 1e-6)
    hessian_matrix = fresh_problem.hessian
    for value, vector in zip(values, vectors, strict=True):
        flat = torch.cat([piece.reshape(-1) for piece in vector])
        residual = float((hessian_matrix @ flat - value * flat).norm())
        assert residual <= tol * abs(value)

    # PyHessian's top eigenvalue: its tol bounds the change between its last iterates, not its error, and it
    # returns the iterate before the last; measured 1.2-2.2·tol (tol 1e-3) and 3.3-4.3·tol (tol 1e-6) from ours
    # on these models over seeds 0-2. Deflated ones converge more slowly still (λ2 ≈ λ3 on the MLP).
    assert abs(their_values[0] - values[0]) <= 5 * tol * abs(values[0])


def test_trace_same_call_gives_per_probe_estimates_around_the_exact_trace(fresh_problem):
    exact = float(torch.trace(fresh_problem.hessian))
    ours, theirs = both(fresh_problem)
    estimates = ours.trace()
    their_estimates = theirs.trace()
    fresh_problem.model.zero_grad(set_to_none=True)

    for found in (estimates, their_estimates):
        assert isinstance(found, list) and all(isinstance(value, float) for value in found)
    assert len(estimates) == 100 - 2 * (100 // 3)  # Hutch++: a third of the budget probes the remainder
    assert ours.operator.num_hvps == 100
    stderr = float(np.std(estimates, ddof=1)) / math.sqrt(len(estimates))
    assert abs(float(np.mean(estimates)) - exact) <= 4 * stderr


def test_density_works_where_pyhessians_raises_on_pytorch_2(fresh_problem):
    exact = exact_spectrum(fresh_problem)
    ours, theirs = both(fresh_problem)
    with pytest.raises(RuntimeError):  # PyHessian calls torch.eig, removed from PyTorch
        theirs.density(iter=5, n_v=1)
    fresh_problem.model.zero_grad(set_to_none=True)

    nodes, weights = ours.density(iter=40, n_v=3)
    assert isinstance(nodes, list) and isinstance(weights, list) and len(nodes) == len(weights) == 3
    for run_nodes, run_weights in zip(nodes, weights, strict=True):
        assert len(run_nodes) == len(run_weights) == 40
        assert all(isinstance(value, float) for value in run_nodes + run_weights)
        assert math.isclose(sum(run_weights), 1.0, rel_tol=1e-12) and min(run_weights) >= 0
        # Ritz values lie inside the spectrum, and 40 Lanczos steps resolve its top exactly
        assert exact[-1] - 1e-9 <= min(run_nodes) and max(run_nodes) <= exact[0] + 1e-9
        assert max(run_nodes) == pytest.approx(exact[0], abs=1e-8)
    default_nodes, default_weights = ours.density()  # PyHessian's defaults: one run of 100 steps
    assert np.array(default_nodes).shape == np.array(default_weights).shape == (1, 100)  # as PyHessian's plots read
    n = sum(p.numel() for p in fresh_problem.model.parameters())
    long_nodes, long_weights = ours.density(iter=n + 10, n_v=2)  # capped at n steps, rectangular even if a run ends
    assert np.array(long_nodes).shape == np.array(long_weights).shape == (2, n)


def test_dataloader_gives_the_full_data_hessian():
    problem = make_mlp_problem()
    loader = [(problem.inputs[:25], problem.targets[:25]), (problem.inputs[25:], problem.targets[25:])]
    ours = hessian(problem.model, F.cross_entropy, dataloader=loader, cuda=False)
    assert ours.full_dataset
    values, _ = ours.eigenvalues(tol=1e-8, top_n=3)
    np.testing.assert_allclose(values, exact_spectrum(problem)[:3], rtol=1e-8)  # mean loss over both batches
    theirs = pyhessian.hessian(problem.model, F.cross_entropy, dataloader=loader, cuda=False)
    their_values, their_vectors = theirs.eigenvalues()
    problem.model.zero_grad(set_to_none=True)
    assert isinstance(their_values[0], float) and len(their_vectors[0]) == len(list(problem.model.parameters()))


def test_model_mode_and_gradients_are_left_alone():
    problem = make_cnn_problem()
    problem.model.train()
    ours = hessian(problem.model, F.cross_entropy, data=(problem.inputs, problem.targets), cuda=False)
    ours.eigenvalues(top_n=1)
    ours.trace(maxIter=12)
    assert problem.model.training and all(p.grad is None for p in problem.model.parameters())
    # evaluated in eval mode: BatchNorm on its running statistics, as the exact Hessian
    values, _ = ours.eigenvalues(tol=1e-8)
    assert values[0] == pytest.approx(float(torch.linalg.eigvalsh(problem.hessian)[-1]), rel=1e-8)
    assert torch.equal(
        exact_hessian(problem.model, F.cross_entropy, problem.inputs, problem.targets), problem.hessian
    )  # running statistics untouched


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_cuda_true_without_cuda_falls_back_to_the_cpu_with_a_warning(mlp_problem):
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        ours = hessian(mlp_problem.model, F.cross_entropy, data=(mlp_problem.inputs, mlp_problem.targets))
    assert ours.device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values, _ = ours.eigenvalues(tol=1e-8)
    assert values[0] == pytest.approx(float(torch.linalg.eigvalsh(mlp_problem.hessian)[-1]), rel=1e-8)


def test_bad_arguments_are_named(mlp_problem):
    model, data = mlp_problem.model, (mlp_problem.inputs, mlp_problem.targets)
    with pytest.raises(ValueError, match=r"exactly one of data= .* and dataloader="):
        hessian(model, F.cross_entropy, cuda=False)
    with pytest.raises(ValueError, match="exactly one of data="):
        hessian(model, F.cross_entropy, data=data, dataloader=[data], cuda=False)
    with pytest.raises(ValueError, match="data must be one"):
        hessian(model, F.cross_entropy, data=[data, data], cuda=False)
    ours = hessian(model, F.cross_entropy, data=data, cuda=False)
    n = sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="top_n"):
        ours.eigenvalues(top_n=n + 1)
    with pytest.raises(ValueError, match="maxIter"):
        ours.trace(maxIter=5)
    with pytest.raises(ValueError, match="tol"):
        ours.eigenvalues(tol=-1.0)
    with pytest.raises(ValueError, match="iter"):
        ours.density(iter=0)
    with pytest.raises(ValueError, match="n_v"):
        ours.density(n_v=0)
