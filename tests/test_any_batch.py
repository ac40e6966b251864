"""Batches of any structure (dicts, longer tuples) with a (model, batch) loss give the same curvature, landscapes
and sharpness as the (inputs, targets) path; mistakes in the loss form get a clear message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench import HessianOperator, batch_loss, hessian_trace, top_eigenpairs
from workbench.batching import batch_size, concat, describe, move_to, split, take
from workbench.probes import loss_slice_1d, worst_case_sharpness

from .conftest import make_mlp_problem


def dict_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return F.cross_entropy(model(batch["features"]), batch["labels"])


@pytest.fixture(scope="module")
def problem():
    return make_mlp_problem(samples=40)


def as_dicts(problem, size: int = 16) -> list[dict]:
    return [
        {"features": problem.inputs[start : start + size], "labels": problem.targets[start : start + size]}
        for start in range(0, problem.inputs.shape[0], size)
    ]


@pytest.mark.parametrize("hvp", ["graph", "func"])
def test_hessian_of_dict_batches_is_the_exact_hessian(problem, hvp):
    op = HessianOperator(problem.model, batch_loss(dict_loss), as_dicts(problem), hvp=hvp)
    identity = torch.eye(op.num_params, dtype=torch.float64)
    torch.testing.assert_close(op.batched_matvec(identity), problem.hessian, rtol=1e-10, atol=1e-10)
    assert op.num_samples == 40
    exact = torch.linalg.eigvalsh(problem.hessian)
    top = top_eigenpairs(op, k=2, tol=1e-8)
    torch.testing.assert_close(top.eigenvalues, exact.flip(0)[:2].to(top.eigenvalues), rtol=1e-7, atol=1e-9)
    pairs = [(batch["features"], batch["labels"]) for batch in as_dicts(problem)]
    by_pairs = HessianOperator(problem.model, F.cross_entropy, pairs, hvp=hvp)
    assert hessian_trace(op, num_samples=12, seed=0).estimate == pytest.approx(
        hessian_trace(by_pairs, num_samples=12, seed=0).estimate, rel=1e-12
    )


def test_landscapes_and_sharpness_agree_between_the_two_forms(problem):
    pairs = [(batch["features"], batch["labels"]) for batch in as_dicts(problem)]
    direction = torch.randn(sum(p.numel() for p in problem.model.parameters()), dtype=torch.float64)
    coords = [-0.5, 0.0, 0.5]
    by_pairs = loss_slice_1d(problem.model, F.cross_entropy, pairs, direction, coords)
    by_dicts = loss_slice_1d(problem.model, batch_loss(dict_loss), as_dicts(problem), direction, coords)
    torch.testing.assert_close(torch.as_tensor(by_dicts.loss), torch.as_tensor(by_pairs.loss))
    sharp_pairs = worst_case_sharpness(problem.model, F.cross_entropy, pairs, rho=0.05, steps=3)
    sharp_dicts = worst_case_sharpness(problem.model, batch_loss(dict_loss), as_dicts(problem), rho=0.05, steps=3)
    assert sharp_dicts.value == pytest.approx(sharp_pairs.value, rel=1e-9) and sharp_pairs.value > 0


def test_loss_form_mistakes_name_the_fix(problem):
    with pytest.raises(ValueError, match=r"each batch must be an \(inputs, targets\) pair.*workbench.batch_loss"):
        HessianOperator(problem.model, F.cross_entropy, as_dicts(problem))

    def looks_like_a_model_loss(model, batch):
        return dict_loss(model, batch)

    with pytest.raises(ValueError, match=r"looks like a \(model, batch\) loss.*wrap it as workbench.batch_loss"):
        HessianOperator(problem.model, looks_like_a_model_loss, as_dicts(problem))
    with pytest.raises(ValueError, match=r"data batch 0 must be a tuple, list or dict of tensors, got str"):
        HessianOperator(problem.model, F.cross_entropy, ["not a batch"])


def test_batch_structure_helpers():
    batch = {"x": torch.arange(10).reshape(5, 2), "meta": (torch.arange(5), ["a", "b", "c", "d", "e"])}
    assert batch_size(batch) == 5 and describe(batch).startswith("{'x': Tensor(5, 2)")
    first = take(batch, 2)
    assert first["meta"][1] == ["a", "b"] and torch.equal(first["x"], batch["x"][:2])
    parts = split(batch, 2)
    assert [batch_size(part) for part in parts] == [2, 3]
    joined = concat(parts)
    assert torch.equal(joined["x"], batch["x"]) and joined["meta"][1] == batch["meta"][1]
    assert move_to(batch, "cpu")["meta"][1] == batch["meta"][1]
    with pytest.raises(ValueError, match="samples along dim 0, all of the same length"):
        batch_size({"x": torch.zeros(3), "y": torch.zeros(4)})
