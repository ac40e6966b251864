"""Optimizers on a small CNN: BatchNorm statistics, bit-identical resume, step records and bad input."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from workbench.optim import ASAM, SAM, XSAM, EigenSAM

from .conftest import SmallConvNet
from .quadratic import Quadratic


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    inputs = torch.randn(16, 1, 8, 8, generator=generator, dtype=torch.float64)
    return inputs, torch.randint(0, 3, (16,), generator=generator)


def closure_for(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]):
    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(data[0]), data[1])
        loss.backward()
        return loss

    return closure


def small_cnn(seed: int = 0) -> SmallConvNet:
    torch.manual_seed(seed)
    return SmallConvNet().double()


def buffers_of(model: torch.nn.Module) -> list[torch.Tensor]:
    return [b.clone() for b in model.buffers()]


@pytest.mark.parametrize("method", ["SAM", "SAM by first_step/second_step", "X-SAM refreshing"])
def test_perturbed_pass_and_refresh_leave_batchnorm_statistics_as_the_first_pass_left_them(method):
    model = small_cnn()
    if method == "X-SAM refreshing":
        optimizer = XSAM(model.parameters(), lr=0.1, freq=1, power_iters=2, model=model)
        optimizer.step(closure_for(model, batch(0)))
        assert optimizer.refresh_due
    else:
        optimizer = SAM(model.parameters(), lr=0.1, model=model)
    first_pass_only = copy.deepcopy(model)
    with torch.no_grad():
        first_pass_only(batch(1)[0])  # one training-mode forward pass on the step's batch
    closure = closure_for(model, batch(1))
    if method == "SAM by first_step/second_step":
        closure()
        optimizer.first_step(zero_grad=True)
        closure()
        optimizer.second_step(zero_grad=True)
    else:
        optimizer.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(buffers_of(model), buffers_of(first_pass_only), strict=True))
    assert model.training


def test_without_model_the_perturbed_pass_updates_batchnorm_like_any_forward_pass():
    model = small_cnn()
    tracked = model.norm.num_batches_tracked.clone()
    SAM(model.parameters(), lr=0.1).step(closure_for(model, batch(0)))
    assert int(model.norm.num_batches_tracked - tracked) == 2


def run(factory, steps: range, model: torch.nn.Module, state: dict | None = None):
    optimizer = factory(model)
    if state is not None:
        optimizer.load_state_dict(state)
    for step in steps:
        optimizer.step(closure_for(model, batch(step)))
    return optimizer


def deep_copy(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


FACTORIES = {
    "Eigen-SAM, SGD momentum": lambda m: EigenSAM(
        m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, freq=2, power_iters=2, model=m
    ),
    "X-SAM, Adam": lambda m: XSAM(m.parameters(), torch.optim.Adam, lr=0.01, freq=2, power_iters=2, model=m),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_a_resumed_run_continues_bit_identically(name):
    factory = FACTORIES[name]
    straight = small_cnn()
    full = run(factory, range(6), straight)
    first_half = small_cnn()
    saved = run(factory, range(3), first_half)
    model_state, optimizer_state = deep_copy(first_half.state_dict()), deep_copy(saved.state_dict())
    resumed_model = small_cnn(seed=1)  # different weights, overwritten by the checkpoint
    resumed_model.load_state_dict(model_state)
    resumed = run(factory, range(3, 6), resumed_model, optimizer_state)
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed_model.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(straight.buffers(), resumed_model.buffers(), strict=True))
    assert torch.equal(full.tracker.vector, resumed.tracker.vector)
    assert (resumed.step_count, resumed.tracker.num_refreshes) == (6, full.tracker.num_refreshes) == (6, 2)
    assert resumed.last_step.scalars() == full.last_step.scalars()


def test_step_record_scalars_form_one_table_row():
    model = small_cnn()
    optimizer = EigenSAM(model.parameters(), lr=0.05, freq=1, power_iters=2, model=model)
    for step in range(2):
        optimizer.step(closure_for(model, batch(step)))
    row = optimizer.last_step.scalars()
    assert row["step"] == 1.0 and row["refreshed"] == 1.0 and row["orientation_sign"] == 1.0
    assert row["eigenvalue"] == optimizer.tracker.eigenvalue > 0
    expected_cos = torch.dot(optimizer.last_step.perturbation, optimizer.tracker.vector) / (
        optimizer.last_step.perturbation.norm()
    )
    assert row["cos_perturbation_eigenvector"] == pytest.approx(float(expected_cos))
    assert optimizer.last_step.gradient.shape == (sum(p.numel() for p in model.parameters()),)


class TestBadInput:
    @pytest.mark.parametrize(
        ("factory", "message"),
        [
            (lambda p: SAM(p, rho=0.0), r"rho must be in \(0, inf\), got 0"),
            (lambda p: ASAM(p, rho=-1.0), r"rho must be in \(0, inf\)"),
            (lambda p: ASAM(p, eta=-0.1), r"eta must be in \[0, inf\)"),
            (lambda p: EigenSAM(p, alpha=-0.1), r"alpha must be in \[0, inf\)"),
            (lambda p: XSAM(p, alpha=2.5), r"alpha must be in \[0, 2\], got 2.5"),
            (lambda p: XSAM(p, freq=0), "freq must be an integer >= 1"),
            (lambda p: EigenSAM(p, power_iters=0), "power_iters must be an integer >= 1"),
            (lambda p: XSAM(p, orientation="up"), "orientation must be one of 'as_computed', 'along_gradient'"),
            (lambda p: XSAM(p, angle_gate="yes"), "angle_gate must be one of False, True"),
            (lambda p: SAM(p, model="net"), "model must be a torch.nn.Module or None"),
        ],
    )
    def test_bad_hyper_parameters(self, factory, message):
        with pytest.raises(ValueError, match=message):
            factory(Quadratic(torch.ones(4, dtype=torch.float64)).parameters())

    def test_closures_that_misbehave(self):
        problem = Quadratic(torch.ones(4, dtype=torch.float64))
        optimizer = SAM(problem.parameters(), lr=0.1)
        with pytest.raises(ValueError, match="closure is required"):
            optimizer.step()
        with pytest.raises(ValueError, match="closure returned None"):
            optimizer.step(lambda: None)
        with pytest.raises(ValueError, match="closure left every parameter's gradient empty"):
            optimizer.step(lambda: problem())

    def test_refresh_needs_a_twice_differentiable_loss_and_an_eigenvector_method(self):
        problem = Quadratic(torch.ones(4, dtype=torch.float64))
        parameters = list(problem.parameters())

        def linear_closure() -> torch.Tensor:
            loss = sum(p.sum() for p in parameters)
            loss.backward()
            return loss

        with pytest.raises(ValueError, match="closure's gradients carry no graph"):
            EigenSAM(parameters, lr=0.1).refresh_eigenvector(linear_closure)
        assert all(p.grad is None for p in parameters)
        with pytest.raises(ValueError, match="SAM tracks no eigenvector"):
            SAM(parameters, lr=0.1).refresh_eigenvector(problem.closure())

    def test_manual_steps_out_of_order(self):
        problem = Quadratic(torch.ones(4, dtype=torch.float64))
        optimizer = SAM(problem.parameters(), lr=0.1)
        with pytest.raises(ValueError, match=r"first_step\(\) found no gradient"):
            optimizer.first_step()
        with pytest.raises(RuntimeError, match=r"second_step\(\) needs first_step\(\) first"):
            optimizer.second_step()

    def test_foreign_state_dicts(self):
        parameters = list(Quadratic(torch.ones(4, dtype=torch.float64)).parameters())
        with pytest.raises(ValueError, match="has no 'workbench' entry"):
            SAM(parameters, lr=0.1).load_state_dict(torch.optim.SGD(parameters, lr=0.1).state_dict())
        with pytest.raises(ValueError, match="saved by optimizer class SAM and cannot be loaded into EigenSAM"):
            EigenSAM(parameters, lr=0.1).load_state_dict(SAM(parameters, lr=0.1).state_dict())
        with pytest.raises(ValueError, match="saved by optimizer class XSAM and cannot be loaded into EigenSAM"):
            EigenSAM(parameters, lr=0.1).load_state_dict(XSAM(parameters, lr=0.1).state_dict())
