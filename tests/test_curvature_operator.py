"""HessianOperator: exact products against torch.func.hessian, batching, modes, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import eigsh
from torch import nn

from workbench.curvature import HessianOperator
from workbench.params import unflatten

from .conftest import exact_hessian


@pytest.mark.parametrize("max_batched", [1, 8])
@pytest.mark.parametrize("hvp", ["graph", "func"])
def test_matvec_matches_exact_hessian(problem, hvp, max_batched):
    op = HessianOperator(
        problem.model, problem.loss_fn, (problem.inputs, problem.targets), hvp=hvp, max_batched=max_batched
    )
    assert op.num_params == problem.hessian.shape[0]
    vector = torch.randn(op.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(op.matvec(vector), problem.hessian @ vector, rtol=1e-10, atol=1e-12)
    block = torch.randn(7, op.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.batched_matvec(block), block @ problem.hessian, rtol=1e-10, atol=1e-12)
    assert op.num_hvps == 8


def test_matvec_accepts_and_returns_per_parameter_lists(mlp_problem):
    op = HessianOperator(mlp_problem.model, mlp_problem.loss_fn, (mlp_problem.inputs, mlp_problem.targets))
    vector = torch.randn(op.num_params, dtype=torch.float64)
    pieces = unflatten(vector, op.params)
    result = op.matvec(pieces)
    assert isinstance(result, list)
    assert [r.shape for r in result] == [p.shape for p in op.params]
    torch.testing.assert_close(torch.cat([r.flatten() for r in result]), mlp_problem.hessian @ vector)


@pytest.mark.parametrize(("hvp", "cache_graph"), [("graph", True), ("graph", False), ("func", None)])
def test_batch_iterable_equals_concatenated_batch(cnn_problem, hvp, cache_graph):
    x, y = cnn_problem.inputs, cnn_problem.targets
    loader = [(x[:5], y[:5]), (x[5:16], y[5:16]), (x[16:], y[16:])]  # uneven sizes: weights matter
    op = HessianOperator(cnn_problem.model, F.cross_entropy, loader, hvp=hvp, cache_graph=cache_graph)
    assert op.num_samples == x.shape[0]
    vector = torch.randn(op.num_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(vector), cnn_problem.hessian @ vector, rtol=1e-10, atol=1e-12)


def test_gradient_is_the_size_weighted_full_batch_gradient(cnn_problem):
    x, y = cnn_problem.inputs, cnn_problem.targets
    op = HessianOperator(cnn_problem.model, F.cross_entropy, [(x[:10], y[:10]), (x[10:], y[10:])])
    cnn_problem.model.eval()
    try:
        loss = F.cross_entropy(cnn_problem.model(x), y)
        expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, op.params)])
    finally:
        cnn_problem.model.train()
    torch.testing.assert_close(op.gradient(), expected)


def test_model_modes_and_batchnorm_statistics_are_restored(cnn_problem):
    model = cnn_problem.model
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    op = HessianOperator(model, F.cross_entropy, (cnn_problem.inputs, cnn_problem.targets), hvp="func")
    op.matvec(torch.ones(op.num_params, dtype=torch.float64))
    assert model.training and model.conv.training and model.norm.training and not model.head.training
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, before[name], msg=f"buffer {name} changed")
    model.head.train()


def test_linear_operator_runs_scipy_eigsh(mlp_problem):
    op = HessianOperator(mlp_problem.model, mlp_problem.loss_fn, (mlp_problem.inputs, mlp_problem.targets))
    values = eigsh(op.to_linear_operator(), k=3, which="LA", return_eigenvectors=False)
    expected = torch.linalg.eigvalsh(mlp_problem.hessian).flip(0)[:3].numpy()
    np.testing.assert_allclose(np.sort(values)[::-1], expected, rtol=1e-8)


def test_hessian_of_a_loss_linear_in_the_parameters_is_zero():
    model = nn.Linear(3, 1, bias=False).double()
    op = HessianOperator(model, lambda out, _: out.mean(), (torch.randn(4, 3, dtype=torch.float64), torch.zeros(4)))
    assert torch.count_nonzero(op.matvec(torch.ones(3, dtype=torch.float64))) == 0


def test_params_subset(mlp_problem):
    last = list(mlp_problem.model[2].parameters())
    op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets), params=last)
    full = exact_hessian(mlp_problem.model, F.cross_entropy, mlp_problem.inputs, mlp_problem.targets)
    start = sum(p.numel() for p in mlp_problem.model[0].parameters())
    block = full[start:, start:]
    vector = torch.randn(op.num_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(vector), block @ vector)


class TestBadInput:
    def test_flat_vector_of_wrong_size(self, mlp_problem):
        op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
        with pytest.raises(ValueError, match=r"vector must be a flat tensor of shape \(114,\)"):
            op.matvec(torch.ones(5, dtype=torch.float64))

    def test_per_parameter_list_with_a_wrong_shape(self, mlp_problem):
        op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
        pieces = [torch.zeros_like(p) for p in op.params]
        pieces[1] = torch.zeros(3, dtype=torch.float64)
        with pytest.raises(ValueError, match=r"vector\[1\] must have shape \(10,\)"):
            op.matvec(pieces)
        with pytest.raises(ValueError, match="must hold 4 tensors"):
            op.matvec(pieces[:2])

    def test_batched_vectors_of_wrong_shape(self, mlp_problem):
        op = HessianOperator(mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets))
        with pytest.raises(ValueError, match=r"vectors must have shape \(b, 114\)"):
            op.batched_matvec(torch.ones(114, dtype=torch.float64))

    def test_empty_loader(self, mlp_problem):
        with pytest.raises(ValueError, match="data is empty"):
            HessianOperator(mlp_problem.model, F.cross_entropy, [])
        with pytest.raises(ValueError, match="data is empty"):
            HessianOperator(mlp_problem.model, F.cross_entropy, iter(()))

    def test_batch_with_no_samples(self, mlp_problem):
        x = mlp_problem.inputs
        with pytest.raises(ValueError, match="batch 0 is empty"):
            HessianOperator(mlp_problem.model, F.cross_entropy, (x[:0], mlp_problem.targets[:0]))

    def test_data_that_is_not_batches(self, mlp_problem):
        with pytest.raises(ValueError, match="inputs, targets"):
            HessianOperator(mlp_problem.model, F.cross_entropy, [mlp_problem.inputs])
        with pytest.raises(ValueError, match="inputs, targets"):
            HessianOperator(mlp_problem.model, F.cross_entropy, 3)

    def test_loss_that_does_not_depend_on_the_parameters(self, mlp_problem):
        data = (mlp_problem.inputs, mlp_problem.targets)
        with pytest.raises(ValueError, match="does not depend on the parameters"):
            HessianOperator(mlp_problem.model, lambda out, y: torch.tensor(1.0), data)
        with pytest.raises(ValueError, match="does not depend on the parameters"):
            HessianOperator(mlp_problem.model, lambda out, y: out.detach().sum(), data)
        stranger = [nn.Parameter(torch.ones(3, dtype=torch.float64))]
        with pytest.raises(ValueError, match="does not depend on the parameters"):
            HessianOperator(mlp_problem.model, F.cross_entropy, data, params=stranger)

    def test_non_scalar_loss(self, mlp_problem):
        data = (mlp_problem.inputs, mlp_problem.targets)
        with pytest.raises(ValueError, match="scalar"):
            HessianOperator(mlp_problem.model, lambda out, y: F.cross_entropy(out, y, reduction="none"), data)

    def test_bad_options(self, mlp_problem):
        data = (mlp_problem.inputs, mlp_problem.targets)
        with pytest.raises(ValueError, match="hvp must be one of"):
            HessianOperator(mlp_problem.model, F.cross_entropy, data, hvp="finite-differences")
        with pytest.raises(ValueError, match="params is empty"):
            HessianOperator(mlp_problem.model, F.cross_entropy, data, params=[])
        with pytest.raises(ValueError, match="max_batched"):
            HessianOperator(mlp_problem.model, F.cross_entropy, data, max_batched=0)

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
    def test_cuda_without_a_gpu(self, mlp_problem):
        with pytest.raises(ValueError, match="no CUDA device"):
            HessianOperator(
                mlp_problem.model, F.cross_entropy, (mlp_problem.inputs, mlp_problem.targets), device="cuda"
            )
