"""Trace estimators: unbiased within their standard error; Hutch++ exact once the sketch spans H."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.curvature import DenseOperator, HessianOperator, hessian_trace


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_estimators_are_unbiased_within_their_standard_error(cnn_problem, method):
    op = DenseOperator(cnn_problem.hessian)  # the estimator only sees products; the exact H keeps this fast
    exact = float(cnn_problem.hessian.trace())
    results = [hessian_trace(op, method=method, num_samples=30, seed=seed) for seed in range(300)]
    estimates = torch.tensor([r.estimate for r in results], dtype=torch.float64)
    mean_stderr = float(estimates.std()) / len(results) ** 0.5
    assert abs(float(estimates.mean()) - exact) < 4 * mean_stderr
    reported = torch.tensor([r.stderr for r in results]).mean()
    assert 0.7 < float(reported) / float(estimates.std()) < 1.3  # the reported stderr is honest
    assert all(r.num_hvps == 30 for r in results)


def test_on_a_model_each_estimate_is_within_a_few_standard_errors(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    exact = float(mlp_problem.hessian.trace())
    for method in ("hutchinson", "hutch++"):
        result = hessian_trace(op, method=method, num_samples=60, seed=1)
        assert abs(result.estimate - exact) < 4 * result.stderr, (method, result, exact)


def test_hutch_plus_plus_is_exact_when_the_sketch_spans_the_space():
    generator = torch.Generator().manual_seed(0)
    half = torch.randn(10, 10, generator=generator, dtype=torch.float64)
    matrix = half + half.T
    result = hessian_trace(DenseOperator(matrix), method="hutch++", num_samples=36)
    assert result.estimate == pytest.approx(float(matrix.trace()), abs=1e-9)
    assert result.stderr == pytest.approx(0.0, abs=1e-9)


def test_hutch_plus_plus_beats_hutchinson_on_a_decaying_spectrum():
    generator = torch.Generator().manual_seed(0)
    rotation = torch.linalg.qr(torch.randn(200, 200, generator=generator, dtype=torch.float64)).Q
    spectrum = 100.0 * 0.8 ** torch.arange(200, dtype=torch.float64)
    op = DenseOperator(rotation @ torch.diag(spectrum) @ rotation.T)
    plain = hessian_trace(op, method="hutchinson", num_samples=60)
    plus = hessian_trace(op, method="hutch++", num_samples=60)
    assert plus.stderr * 10 < plain.stderr


def test_same_seed_same_estimate(mlp_problem):
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
    assert hessian_trace(op, seed=5) == hessian_trace(op, seed=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "exact"}, "method must be one of 'hutch\\+\\+', 'hutchinson'"),
        ({"method": "hutch++", "num_samples": 5}, "num_samples must be an integer >= 6"),
        ({"method": "hutchinson", "num_samples": 1}, "num_samples must be an integer >= 2"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hessian_trace(DenseOperator(torch.eye(3, dtype=torch.float64)), **kwargs)
