"""The shared first pass: a due refresh takes its products from the first pass's own gradient graph when that pass
computes the refresh's (eval-mode) loss, and gives what a separate refresh pass gives."""

from __future__ import annotations

import copy
import gc
import weakref
from collections import namedtuple
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import make_cnn_problem, make_mlp_problem
from workbench.distributed.passes import StepPasses
from workbench.losses import as_batch_loss
from workbench.optim import XSAM, EigenSAM
from workbench.optim.train_mode_guard import (
    TrainModeLayerError,
    computes_the_same_in_train_and_eval,
    forbid_train_mode,
)
from workbench.optim.wrapped import detached_result

STEPS = 7


class CountingClosure:
    """The loss of ``model`` on one batch, backward included; counts its calls."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.model, self.inputs, self.targets = model, inputs, targets
        self.calls = 0

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        loss = F.cross_entropy(self.model(self.inputs), self.targets)
        loss.backward()
        return loss


def train(factory: Callable, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, separate: bool):
    """``STEPS`` steps with refreshes every 2 steps; ``separate`` passes ``refresh_closure`` (its own pass)."""
    model = copy.deepcopy(model)
    optimizer = factory(model)
    closure = CountingClosure(model, inputs, targets)
    for _ in range(STEPS):
        optimizer.step(closure, refresh_closure=closure if separate else None)
    return model, optimizer, closure.calls


FACTORIES = {
    "eigensam, model given": lambda m: EigenSAM(m.parameters(), lr=0.1, momentum=0.9, freq=2, model=m),
    "xsam, model given": lambda m: XSAM(m.parameters(), lr=0.1, freq=2, model=m),
    "xsam, no model": lambda m: XSAM(m.parameters(), lr=0.1, freq=2),
    "xsam, power refresh": lambda m: XSAM(m.parameters(), lr=0.1, freq=2, refresh="power", power_iters=3, model=m),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_model_without_mode_dependent_layers_shares_the_first_pass_with_the_same_result(name):
    problem = make_mlp_problem()
    shared, shared_optimizer, shared_calls = train(
        FACTORIES[name], problem.model, problem.inputs, problem.targets, separate=False
    )
    alone, alone_optimizer, alone_calls = train(
        FACTORIES[name], problem.model, problem.inputs, problem.targets, separate=True
    )
    refreshes = shared_optimizer.tracker.num_refreshes
    assert refreshes == alone_optimizer.tracker.num_refreshes == 3  # before steps 2, 4 and 6
    verified = 0 if name == "xsam, no model" else 1  # with model, the first refresh checks the modes on its own pass
    assert alone_calls == 2 * STEPS + refreshes and shared_calls == 2 * STEPS + verified  # a pass fewer per refresh
    assert shared_optimizer._mode_free is (None if name == "xsam, no model" else True)
    torch.testing.assert_close(shared_optimizer.tracker.vector, alone_optimizer.tracker.vector, rtol=0, atol=1e-10)
    for a, b in zip(shared.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    assert all(param.grad is None or not param.grad.requires_grad for param in shared.parameters())


def test_a_batchnorm_model_given_keeps_its_eval_mode_refresh_pass():
    problem = make_cnn_problem()
    _, optimizer, calls = train(FACTORIES["xsam, model given"], problem.model, problem.inputs, problem.targets,
                                separate=False)  # fmt: skip
    assert calls == 2 * STEPS + optimizer.tracker.num_refreshes


def test_without_model_batchnorm_in_training_mode_is_still_refused():
    problem = make_cnn_problem()
    with pytest.raises(ValueError, match="Pass model=<your module>"):
        train(FACTORIES["xsam, no model"], problem.model, problem.inputs, problem.targets, separate=False)


class FunctionalDropout(nn.Module):
    """An MLP whose dropout is a functional call on ``self.training``: no dropout module to be seen."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(6, 10), nn.Linear(10, 4)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(F.dropout(torch.tanh(self.first(x)), self.p, self.training))


class TrainingBranch(nn.Module):
    """An MLP that scales its hidden units in training mode by a branch of its own: no layer to be seen at all."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(6, 10), nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.first(x))
        return self.second(hidden * 0.8 if self.training else hidden)


class StochasticDepth(nn.Module):
    """A residual MLP block with stochastic depth as torchvision writes it (a Bernoulli mask per sample in training
    mode), without its shortcut for p = 0."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.first, self.branch, self.second = nn.Linear(6, 10), nn.Linear(10, 10), nn.Linear(10, 4)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.first(x))
        branch = self.branch(hidden)
        if self.training:
            keep = torch.empty(x.shape[0], 1, dtype=x.dtype).bernoulli_(1 - self.p)
            branch = branch * keep / (1 - self.p)
        return self.second(hidden + torch.tanh(branch))


def double_problem(model: nn.Module) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return model.double(), torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 4, (20,))


@pytest.mark.parametrize(
    "model",
    [FunctionalDropout(0.5), TrainingBranch(), StochasticDepth(0.5)],
    ids=["functional dropout", "branch", "stochastic depth"],
)
def test_a_model_that_computes_differently_in_training_mode_keeps_eval_mode_refreshes(model):
    """Invisible to the module check, seen by the first refresh: its eval-mode loss differs from the first pass's.
    Every refresh then keeps its own pass, and training equals training with ``refresh_closure`` given."""
    model, inputs, targets = double_problem(model)
    assert computes_the_same_in_train_and_eval(model)  # invisible to the static check
    torch.manual_seed(1)
    trained, optimizer, calls = train(FACTORIES["xsam, model given"], model, inputs, targets, separate=False)
    torch.manual_seed(1)
    alone, _, alone_calls = train(FACTORIES["xsam, model given"], model, inputs, targets, separate=True)
    refreshes = optimizer.tracker.num_refreshes
    assert refreshes == 3 and optimizer._mode_free is False
    assert calls == alone_calls == 2 * STEPS + refreshes
    for a, b in zip(trained.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_random_sampling_seen_during_the_shared_pass_falls_back_to_eval_mode_refreshes():
    """Stochastic depth with p = 0 draws an all-ones mask: the same loss in both modes (the first refresh verifies
    it), but a shared pass that meets a random draw in training mode stops and falls back to eval-mode refreshes
    for good, and training equals training with ``refresh_closure`` given."""
    model, inputs, targets = double_problem(StochasticDepth(0.0))
    trained, optimizer, calls = train(FACTORIES["xsam, model given"], model, inputs, targets, separate=False)
    alone, alone_optimizer, _ = train(FACTORIES["xsam, model given"], model, inputs, targets, separate=True)
    refreshes = optimizer.tracker.num_refreshes
    assert refreshes == 3 and optimizer._mode_free is False
    assert calls == 2 * STEPS + refreshes + 1  # the one shared attempt (2nd refresh) stopped at its random draw
    torch.testing.assert_close(optimizer.tracker.vector, alone_optimizer.tracker.vector, rtol=0, atol=1e-10)
    for a, b in zip(trained.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_dropout_with_p_zero_shares_the_first_pass():
    """Dropout layers built with p = 0 (e.g. a WideResNet's default) compute the same in both modes: shared."""
    model, inputs, targets = double_problem(FunctionalDropout(0.0))
    _, optimizer, calls = train(FACTORIES["xsam, model given"], model, inputs, targets, separate=False)
    assert optimizer._mode_free is True and calls == 2 * STEPS + 1  # the first refresh's own (verifying) pass


@pytest.mark.parametrize(
    ("module", "same"),
    [
        (nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.LayerNorm(2), nn.Dropout(0.0)), True),
        (nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)), False),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)), False),
        (nn.InstanceNorm1d(3), False),
        (nn.GRU(2, 2, num_layers=2, dropout=0.2), False),
        (nn.MultiheadAttention(4, 2), True),
        (nn.MultiheadAttention(4, 2, dropout=0.1), False),
        (nn.GroupNorm(1, 2), True),
    ],
)
def test_which_modules_compute_the_same_in_train_and_eval(module, same):
    assert computes_the_same_in_train_and_eval(module) is same


class StepRecorder:
    """Stands in for an optimizer: records the refresh closure the training engine hands to ``step``."""

    def __init__(self) -> None:
        self.grad_scaler = None
        self.param_groups: list = []
        self.refresh_closure: object = "not called"

    def step(self, closure: Callable, *, refresh_closure: Callable | None = None) -> torch.Tensor:
        self.refresh_closure = refresh_closure
        return torch.zeros(())


@pytest.mark.parametrize(("amp", "m", "shared"), [("off", 1, True), ("bf16", 1, False), ("off", 2, False)])
def test_the_training_engine_lets_the_first_pass_serve_the_refresh_only_in_float32_with_one_chunk(amp, m, shared):
    autocast = partial(torch.autocast, "cpu", dtype=torch.bfloat16) if amp == "bf16" else nullcontext
    passes = StepPasses(nn.Linear(2, 2), as_batch_loss(F.mse_loss), autocast, m=m)
    recorder = StepRecorder()
    passes.run(recorder, (torch.zeros(4, 2), torch.zeros(4, 2)))
    assert (recorder.refresh_closure is None) is shared


def test_the_guard_refuses_dropout_only_with_p_above_zero_and_random_draws_only_when_asked():
    x = torch.ones(3, 4)
    with forbid_train_mode("XSAM"):
        assert torch.equal(F.dropout(x, 0.0, training=True), x)
        F.dropout(x, 0.5, training=False)
        torch.rand(2)
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran dropout in training mode"):
        F.dropout(x, 0.1, training=True)
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran dropout in training mode"):
        F.dropout(x, 0.1)  # training=True is F.dropout's default
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran dropout in training mode"):
        torch.dropout(x, 0.2, True)
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran RReLU in training mode"):
        F.rrelu(x, training=True)
    query = torch.ones(1, 2, 3, 4)
    with forbid_train_mode("XSAM"):
        F.scaled_dot_product_attention(query, query, query)
        F.alpha_dropout(x, 0.5)  # training=False by default
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran attention dropout"):
        F.scaled_dot_product_attention(query, query, query, dropout_p=0.1)
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran attention dropout"):
        nn.MultiheadAttention(4, 2, dropout=0.5).train()(query[0], query[0], query[0])
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran InstanceNorm in training mode"):
        nn.InstanceNorm1d(3, track_running_stats=True).train()(torch.ones(2, 3, 5))
    with forbid_train_mode("XSAM"), pytest.raises(TrainModeLayerError, match="ran dropout in training mode"):
        torch.dropout_(x.clone(), 0.5, True)
    with forbid_train_mode("XSAM"):  # no running statistics: the same computation in eval mode
        nn.BatchNorm1d(3, track_running_stats=False).eval()(torch.randn(4, 3))
        nn.InstanceNorm1d(3).train()(torch.ones(2, 3, 5))
    with forbid_train_mode("XSAM", random_ops=True):
        with pytest.raises(TrainModeLayerError, match=r"random operation .*bernoulli_ .*Pass model=<your module>"):
            torch.empty(3).bernoulli_(0.5)
        with pytest.raises(TrainModeLayerError, match="random operation"):
            torch.randn_like(x)


def test_a_grad_scaler_or_a_hessian_hook_keeps_the_refresh_on_its_own_pass():
    """A scaled loss is not the refresh's loss: with a grad_scaler the refresh needs its own closure, named in
    the error; a ``hessian_hook`` (the distributed average) always gets the refresh's own pass."""
    problem = make_mlp_problem()
    model = copy.deepcopy(problem.model)
    optimizer = XSAM(model.parameters(), lr=0.1, freq=1, model=model)
    closure = CountingClosure(model, problem.inputs, problem.targets)
    optimizer.step(closure)  # step 0: no refresh due
    optimizer.grad_scaler = torch.amp.GradScaler("cpu")  # the error comes before any pass of step 1
    with pytest.raises(ValueError, match="refresh_closure is required with a grad_scaler"):
        optimizer.step(closure)
    hooked = []
    model = copy.deepcopy(problem.model)
    optimizer = XSAM(model.parameters(), lr=0.1, freq=1)
    optimizer.hessian_hook = lambda hessian: hooked.append(hessian) or hessian
    closure = CountingClosure(model, problem.inputs, problem.targets)
    for _ in range(3):
        optimizer.step(closure)
    assert len(hooked) == optimizer.tracker.num_refreshes == 2 and closure.calls == 2 * 3 + 2


@pytest.mark.parametrize("with_model", [False, True])
def test_tensors_outside_the_optimizer_keep_no_graph_and_get_the_two_passes_gradients(with_model):
    """A body that another optimizer trains: after each refresh step its gradient carries no graph (which would
    keep every pass's graph alive). With ``model``, it is the sum of the step's two passes with or without sharing
    (a refresh on its own pass leaves it as it was); without, the refresh's own pass adds its gradient."""
    gradients = {}
    for separate in (False, True):
        torch.manual_seed(0)
        body, head = nn.Linear(6, 10).double(), nn.Linear(10, 4).double()
        model = nn.Sequential(body, nn.Tanh(), head)
        inputs, targets = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 4, (20,))
        optimizer = XSAM(head.parameters(), lr=0.1, freq=1, model=model if with_model else None)
        closure = CountingClosure(model, inputs, targets)
        optimizer.step(closure)  # step 0: no refresh
        gradients[separate] = []
        for _ in range(2):
            body.zero_grad()
            optimizer.step(closure, refresh_closure=closure if separate else None)
            assert optimizer.last_step.refreshed and not body.weight.grad.requires_grad
            gradients[separate].append(body.weight.grad.clone())
    for shared, alone in zip(gradients[False], gradients[True], strict=True):
        assert torch.allclose(shared, alone, rtol=0, atol=1e-12) is with_model


def test_a_closure_that_differentiates_its_input_works_in_every_refresh():
    """FGSM-style adversarial training reads the gradient of its own input tensor inside the closure: every refresh
    pass gives it one, and the body's gradient is left as it was by a refresh on its own pass."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    inputs, targets = torch.randn(32, 6, dtype=torch.float64), torch.randint(0, 3, (32,))

    def closure() -> torch.Tensor:
        attacked = inputs.clone().requires_grad_(True)
        F.cross_entropy(model(attacked), targets).backward()
        adversarial = (inputs + 0.05 * attacked.grad.sign()).detach()
        for param in model.parameters():
            param.grad = None
        loss = F.cross_entropy(model(adversarial), targets)
        loss.backward()
        return loss

    for with_model in (False, True):
        optimizer = XSAM(model.parameters(), lr=0.1, freq=1, model=model if with_model else None)
        optimizer.step(closure)
        optimizer.step(closure)  # shared, or verifying on its own pass with model
        optimizer.step(closure, refresh_closure=closure)
        optimizer.refresh_eigenvector(closure)
        assert optimizer.tracker.num_refreshes == 3


def test_a_stopped_shared_pass_leaves_outside_gradients_as_they_were():
    """A closure of two micro-batches whose second draws a random number (with no effect on the loss): the shared
    attempt stops after the first micro-batch's backward, and the body outside the optimizer gets back the gradient
    it had, so every step's body gradient equals the one with ``refresh_closure`` given."""
    gradients = {}
    for separate in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4)).double()
        body, head = model[0], model[2]
        inputs, targets = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 4, (20,))
        optimizer = XSAM(head.parameters(), lr=0.1, freq=1, model=model)

        def closure(model: nn.Module = model, inputs: torch.Tensor = inputs, targets: torch.Tensor = targets):
            total = torch.zeros((), dtype=torch.float64)
            for half in (slice(0, 10), slice(10, 20)):
                part = inputs[half] if half.start == 0 else inputs[half] + 0.0 * torch.rand(1, dtype=torch.float64)
                loss = F.cross_entropy(model(part), targets[half]) / 2
                loss.backward()
                total = total + loss.detach()
            return total

        gradients[separate] = []
        for _ in range(4):
            body.zero_grad()
            optimizer.step(closure, refresh_closure=closure if separate else None)
            assert not body.weight.grad.requires_grad
            gradients[separate].append(body.weight.grad.clone())
        assert optimizer._mode_free is (None if separate else False)
    for shared, alone in zip(gradients[False], gradients[True], strict=True):
        torch.testing.assert_close(shared, alone, rtol=0, atol=1e-12)


def test_a_closure_that_returns_its_outputs_too_is_verified_shared_and_returned_detached():
    """A closure returning ``(loss, logits)``: the first refresh compares the losses, later ones share the pass, and
    ``step`` returns both without a graph (holding the logits keeps no pass's activations alive)."""
    problem = make_mlp_problem()
    model = copy.deepcopy(problem.model)
    optimizer = XSAM(model.parameters(), lr=0.1, freq=1, model=model)

    def closure() -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(problem.inputs)
        loss = F.cross_entropy(logits, problem.targets)
        loss.backward()
        return loss, logits

    for _ in range(4):
        loss, logits = optimizer.step(closure)
        assert loss.dim() == 0 and logits.shape[0] == problem.inputs.shape[0]
        assert not loss.requires_grad and not logits.requires_grad
    assert optimizer._mode_free is True and optimizer.tracker.num_refreshes == 3


def test_no_tensor_keeps_the_refresh_graph_whatever_the_closure_returns():
    """Tensors the closure differentiates outside the optimizer (an FGSM input, a temperature) end every refresh
    with a gradient that carries no graph, also when the closure returns its loss detached or as a number: the
    leaves are found from the backward calls themselves. The FGSM input is then freed (no reference cycle)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    inputs, targets = torch.randn(32, 6, dtype=torch.float64), torch.randint(0, 3, (32,))
    temperature = torch.ones((), dtype=torch.float64, requires_grad=True)
    attacked_inputs = weakref.WeakSet()

    def closure_returning(kind: str) -> Callable[[], Any]:
        def closure() -> Any:
            attacked = inputs.clone().requires_grad_(True)
            attacked_inputs.add(attacked)
            F.cross_entropy(model(attacked), targets).backward()
            adversarial = (inputs + 0.05 * attacked.grad.sign()).detach()
            for param in model.parameters():
                param.grad = None
            loss = F.cross_entropy(model(adversarial) / temperature, targets)
            loss.backward()
            return {"tensor": loss, "detached": loss.detach(), "number": loss.item()}[kind]

        return closure

    for kind in ("tensor", "detached", "number"):
        for with_model in (False, True):
            optimizer = XSAM(model.parameters(), lr=0.1, freq=1, model=model if with_model else None)
            closure = closure_returning(kind)
            for _ in range(3):
                temperature.grad = None
                optimizer.step(closure)
                assert not temperature.grad.requires_grad
            optimizer.refresh_eigenvector(closure)
            assert not temperature.grad.requires_grad
            gc.collect()
            assert len(attacked_inputs) == 0, (kind, with_model)


def test_detached_result_keeps_the_container_and_drops_every_graph():
    Result = namedtuple("Result", "loss logits")
    tensor = torch.ones(2, requires_grad=True) * 2
    for result in (Result(tensor.sum(), tensor), [tensor.sum(), tensor], (tensor.sum(), tensor)):
        detached = detached_result(result)
        assert type(detached) is type(result) and not any(item.requires_grad for item in detached)
        torch.testing.assert_close(detached[1], tensor.detach())
    assert detached_result(3.0) == 3.0 and not detached_result(tensor).requires_grad


def test_a_refresh_accepts_gradient_edges_and_gives_other_parameters_back_their_own_gradient():
    """``torch.autograd.backward`` with a ``GradientEdge`` among its tensors works in a refresh pass; a body
    parameter whose gradient carried the user's own graph before the refresh gets that very gradient back."""
    torch.manual_seed(0)
    body, head = nn.Linear(6, 10).double(), nn.Linear(10, 4).double()
    model = nn.Sequential(body, nn.Tanh(), head)
    inputs, targets = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 4, (20,))
    auxiliary = torch.ones(3, dtype=torch.float64, requires_grad=True)

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(inputs), targets)
        edge = torch.autograd.graph.get_gradient_edge(auxiliary * 2)
        torch.autograd.backward([loss, edge], grad_tensors=[None, torch.ones(3, dtype=torch.float64)])
        return loss

    own_gradient = torch.autograd.grad(body.weight.square().sum(), body.weight, create_graph=True)[0]
    body.weight.grad = own_gradient
    optimizer = XSAM(head.parameters(), lr=0.1, freq=1, model=model)
    optimizer.refresh_eigenvector(closure)
    assert body.weight.grad is own_gradient and not auxiliary.grad.requires_grad
