"""davda54/sam's usage on workbench.optim.SAM: its README loops with only the import changed, checked step by step
against davda54's formulas written out here (SAM, element-wise ASAM with its 1e-12, bypass_bn's BatchNorm habit)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.optim import ASAM, OPTIMIZERS, SAM, disable_running_stats, enable_running_stats

from .conftest import SmallConvNet
from .test_optim_training import batch

LR, MOMENTUM, RHO_SAM, RHO_ASAM = 0.1, 0.9, 0.05, 2.0


def mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def batches(count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    return [
        (torch.randn(12, 5, generator=generator, dtype=torch.float64), torch.randint(0, 3, (12,), generator=generator))
        for _ in range(count)
    ]


def loss_function(output: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """Named and ordered as in davda54's README: ``loss_function(output, model(input))``, output = the targets."""
    return F.cross_entropy(prediction, output)


# -- davda54/sam's formulas, by hand ----------------------------------------------------------------------------


def davda54_perturbation(
    weights: list[torch.Tensor], grads: list[torch.Tensor], rhos: list[float], adaptive: list[bool]
) -> list[torch.Tensor]:
    """e(w) per parameter: ρ·(w² if adaptive else 1)·g / (‖(|w| if adaptive else 1)·g‖ + 1e-12), norm over all."""
    scaled = [(w.abs() if a else torch.ones_like(w)) * g for w, g, a in zip(weights, grads, adaptive, strict=True)]
    norm = torch.sqrt(sum((s**2).sum() for s in scaled))
    return [
        rho * (w**2 if a else torch.ones_like(w)) * g / (norm + 1e-12)
        for w, g, rho, a in zip(weights, grads, rhos, adaptive, strict=True)
    ]


def gradients_at(model: nn.Module, weights: list[torch.Tensor], data: tuple[torch.Tensor, torch.Tensor]):
    names = [name for name, _ in model.named_parameters()]
    values = [w.clone().requires_grad_(True) for w in weights]
    outputs = torch.func.functional_call(model, dict(zip(names, values, strict=True)), (data[0],))
    return list(torch.autograd.grad(F.cross_entropy(outputs, data[1]), values))


def davda54_trajectory(
    model: nn.Module,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    rhos: list[float],
    adaptive: list[bool],
    lrs: list[float],
) -> list[torch.Tensor]:
    """The weights after each SAM step of davda54/sam over SGD with momentum (buffer b ← μb + g_adv, w ← w − lr·b)."""
    weights = [p.detach().clone() for p in model.parameters()]
    buffers: list[torch.Tensor] | None = None
    for (inputs, targets), lr in zip(data, lrs, strict=True):
        grads = gradients_at(model, weights, (inputs, targets))
        perturbed = [w + e for w, e in zip(weights, davda54_perturbation(weights, grads, rhos, adaptive), strict=True)]
        adversarial = gradients_at(model, perturbed, (inputs, targets))
        if buffers is None:
            buffers = [g.clone() for g in adversarial]
        else:
            buffers = [MOMENTUM * b + g for b, g in zip(buffers, adversarial, strict=True)]
        weights = [w - lr * b for w, b in zip(weights, buffers, strict=True)]
    return weights


def assert_weights(model: nn.Module, expected: list[torch.Tensor]) -> None:
    for param, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(param.detach(), want, rtol=1e-12, atol=1e-14)


# -- the README loops ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adaptive", [False, True])
def test_readme_loop_with_first_and_second_step_follows_davda54s_formulas(adaptive):
    data = batches()
    model = mlp()
    expected = davda54_trajectory(
        copy.deepcopy(model), data, rhos=[RHO_ASAM if adaptive else RHO_SAM] * 4, adaptive=[adaptive] * 4, lrs=[LR] * 3
    )

    base_optimizer = torch.optim.SGD  # define an optimizer for the "sharpness-aware" update
    rho = RHO_ASAM if adaptive else RHO_SAM
    optimizer = SAM(model.parameters(), base_optimizer, rho=rho, adaptive=adaptive, lr=LR, momentum=MOMENTUM)
    for input, output in data:
        # first forward-backward pass
        loss = loss_function(output, model(input))  # use this loss for any training statistics
        loss.backward()
        optimizer.first_step(zero_grad=True)

        # second forward-backward pass
        loss_function(output, model(input)).backward()  # make sure to do a full forward pass
        optimizer.second_step(zero_grad=True)

    assert_weights(model, expected)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zero_grad=True
    assert optimizer.param_groups[0]["adaptive"] is adaptive and optimizer.param_groups[0]["rho"] == rho


def test_readme_closure_loop_and_an_lr_scheduler_on_the_optimizer():
    data = batches()
    model = mlp()
    lrs = [LR, LR / 2, LR / 4]
    expected = davda54_trajectory(copy.deepcopy(model), data, rhos=[RHO_ASAM] * 4, adaptive=[True] * 4, lrs=lrs)

    base_optimizer = torch.optim.SGD
    optimizer = SAM(model.parameters(), base_optimizer, rho=2.0, adaptive=True, lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for input, output in data:

        def closure():
            loss = loss_function(output, model(input))  # noqa: B023 - README's closure, called in this iteration
            loss.backward()
            return loss

        loss = loss_function(output, model(input))
        loss.backward()
        optimizer.step(closure)
        optimizer.zero_grad()
        scheduler.step()

    assert_weights(model, expected)


def test_adaptive_is_a_per_group_setting_like_rho():
    data = batches(2)
    model = mlp()
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    # parameters() order is weight, bias, weight, bias: the by-hand settings follow it
    expected = davda54_trajectory(
        copy.deepcopy(model), data, rhos=[2.0, 0.05, 2.0, 0.05], adaptive=[True, False, True, False], lrs=[LR] * 2
    )
    optimizer = SAM(
        [{"params": [weights[0]]}, {"params": [biases[0]], "rho": 0.05, "adaptive": False},
         {"params": [weights[1]]}, {"params": [biases[1]], "rho": 0.05, "adaptive": False}],
        torch.optim.SGD, rho=2.0, adaptive=True, lr=LR, momentum=MOMENTUM,
    )  # fmt: skip
    for inputs, targets in data:
        loss_function(targets, model(inputs)).backward()
        optimizer.first_step(zero_grad=True)
        loss_function(targets, model(inputs)).backward()
        optimizer.second_step(zero_grad=True)
    assert_weights(model, expected)


def test_adaptive_epsilon_handling_at_tiny_and_zero_gradients_and_a_bad_flag_is_named():
    weights = torch.tensor([0.5, -1.0], dtype=torch.float64)
    param = nn.Parameter(weights.clone())
    optimizer = SAM([param], torch.optim.SGD, rho=2.0, adaptive=True, lr=0.1)
    tiny = torch.tensor([1e-12, 2e-12], dtype=torch.float64)  # ‖|w|·g‖ ≈ 2e-12: davda54's + 1e-12 matters by half
    param.grad = tiny.clone()
    optimizer.first_step()
    expected = 2.0 * weights**2 * tiny / ((weights.abs() * tiny).norm() + 1e-12)
    torch.testing.assert_close(param.detach() - weights, expected, rtol=1e-12, atol=0)
    param.grad = tiny.clone()
    optimizer.second_step()  # back to w, then SGD: w − lr·g
    torch.testing.assert_close(param.detach(), weights - 0.1 * tiny, rtol=1e-15, atol=0)
    param.grad = torch.zeros_like(param)
    before = param.detach().clone()
    optimizer.first_step()
    assert torch.equal(param.detach(), before)  # e(w) = 0 at a zero gradient, as davda54's: no NaN
    with pytest.raises(ValueError, match="adaptive must be True or False"):
        SAM([param], torch.optim.SGD, adaptive=1, lr=0.1)
    with pytest.raises(ValueError, match="adaptive must be True or False"):
        ASAM([{"params": [param], "adaptive": "no"}], lr=0.1)


def test_the_registry_still_builds_sam_and_asam_and_old_checkpoints_get_the_adaptive_default():
    for name in ("sam", "asam"):
        entry = OPTIMIZERS[name]
        assert "adaptive" not in entry.option_names
        built = entry.build(mlp().parameters(), lr=0.1)
        assert built.param_groups[0]["adaptive"] is (name == "asam")
    model = mlp()
    optimizer = SAM(model.parameters(), lr=0.1)
    saved = optimizer.state_dict()
    for group in saved["param_groups"]:
        del group["adaptive"]  # a checkpoint written before "adaptive" was a group setting
    restored = SAM(mlp().parameters(), lr=0.1, adaptive=True)
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["adaptive"] is True  # the constructor's default fills the gap


# -- BatchNorm: davda54's bypass_bn ------------------------------------------------------------------------------


def test_bypass_bn_loop_matches_davda54s_momentum_zero_habit_by_hand():
    torch.manual_seed(0)
    model = SmallConvNet().double()
    reference = copy.deepcopy(model)
    data = [batch(step) for step in range(3)]

    optimizer = SAM(model.parameters(), torch.optim.SGD, rho=2.0, adaptive=True, lr=LR, momentum=MOMENTUM)
    for inputs, targets in data:
        # first forward-backward step
        enable_running_stats(model)
        predictions = model(inputs)
        loss = F.cross_entropy(predictions, targets)
        loss.mean().backward()
        optimizer.first_step(zero_grad=True)

        # second forward-backward step
        disable_running_stats(model)
        F.cross_entropy(model(inputs), targets).mean().backward()
        optimizer.second_step(zero_grad=True)

    # by hand: davda54's formulas, its BatchNorm habit (momentum 0 on the second pass), SGD with momentum
    params = list(reference.parameters())
    buffers = None
    for inputs, targets in data:
        reference.norm.momentum = 0.1
        grads = torch.autograd.grad(F.cross_entropy(reference(inputs), targets), params)
        weights = [p.detach().clone() for p in params]
        ascent = davda54_perturbation(weights, list(grads), [2.0] * len(params), [True] * len(params))
        with torch.no_grad():
            for p, e in zip(params, ascent, strict=True):
                p.add_(e)
        reference.norm.momentum = 0.0
        adversarial = torch.autograd.grad(F.cross_entropy(reference(inputs), targets), params)
        if buffers is None:
            buffers = list(adversarial)
        else:
            buffers = [MOMENTUM * b + g for b, g in zip(buffers, adversarial, strict=True)]
        with torch.no_grad():
            for p, w, b in zip(params, weights, buffers, strict=True):
                p.copy_(w - LR * b)

    assert_weights(model, [p.detach() for p in params])
    torch.testing.assert_close(model.norm.running_mean, reference.norm.running_mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(model.norm.running_var, reference.norm.running_var, rtol=1e-12, atol=1e-14)
    # davda54 counts both passes; switching tracking off counts the first pass only
    assert int(model.norm.num_batches_tracked) == 3 and int(reference.norm.num_batches_tracked) == 6
    assert model.norm.momentum == 0.1 and not model.norm.track_running_stats  # still off after the last step
    enable_running_stats(model)
    assert model.norm.track_running_stats


def test_running_stats_helpers_are_idempotent_and_respect_layers_that_never_track():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.BatchNorm1d(4, track_running_stats=False)).double()
    enable_running_stats(model)  # before any disable: harmless, as davda54's first step does
    assert model[1].track_running_stats and not model[2].track_running_stats
    disable_running_stats(model)
    disable_running_stats(model)  # twice in a row must not lose the saved setting
    before = [b.clone() for b in model[1].buffers()]
    model(torch.randn(8, 4, dtype=torch.float64))
    assert all(torch.equal(a, b) for a, b in zip(before, model[1].buffers(), strict=True))
    enable_running_stats(model)
    assert model[1].track_running_stats and not model[2].track_running_stats
    model(torch.randn(8, 4, dtype=torch.float64))
    assert int(model[1].num_batches_tracked) == 1
