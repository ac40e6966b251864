"""Shared fixtures: small float64 models whose exact Hessians are cheap to form."""

from __future__ import annotations

import os

# One thread for torch here and in every subprocess the tests start (notebooks, the CLI): the test models are
# tiny, so threads buy nothing, and on a busy 2-core machine oversubscribed OpenMP threads slow them 10-100x.
os.environ["OMP_NUM_THREADS"] = "1"

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.modes import eval_mode
from workbench.params import flatten, unflatten

torch.set_num_threads(1)


@dataclass
class Problem:
    """A model, a loss, one batch and the exact Hessian at the model's weights (eval mode)."""

    model: nn.Module
    loss_fn: object
    inputs: torch.Tensor
    targets: torch.Tensor
    hessian: torch.Tensor  # (n, n)


def exact_hessian(model: nn.Module, loss_fn, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of the mean loss with respect to all trainable parameters, by ``torch.func.hessian``."""
    params = [p for p in model.parameters() if p.requires_grad]
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    buffers = dict(model.named_buffers())

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        values = dict(zip(names, unflatten(flat, params), strict=True))
        return loss_fn(torch.func.functional_call(model, {**buffers, **values}, (inputs,)), targets)

    with eval_mode(model):
        return torch.func.hessian(loss_of)(flatten([p.detach() for p in params]))


def make_mlp_problem(seed: int = 0, samples: int = 40) -> Problem:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4)).double()
    inputs = torch.randn(samples, 6, dtype=torch.float64)
    targets = torch.randint(0, 4, (samples,))
    return Problem(model, F.cross_entropy, inputs, targets, exact_hessian(model, F.cross_entropy, inputs, targets))


class SmallConvNet(nn.Module):
    """Conv → BatchNorm → ReLU → pool → linear, on 1×8×8 images: ~370 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)
        return self.head(x.flatten(1))


def make_cnn_problem(seed: int = 0, samples: int = 24) -> Problem:
    torch.manual_seed(seed)
    model = SmallConvNet().double()
    inputs = torch.randn(samples, 1, 8, 8, dtype=torch.float64)
    targets = torch.randint(0, 3, (samples,))
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            model(inputs * 1.5 + 0.3)
    return Problem(model, F.cross_entropy, inputs, targets, exact_hessian(model, F.cross_entropy, inputs, targets))


@pytest.fixture(scope="module")
def mlp_problem() -> Problem:
    return make_mlp_problem()


@pytest.fixture(scope="module")
def cnn_problem() -> Problem:
    return make_cnn_problem()


@pytest.fixture(params=["mlp", "cnn"], scope="module")
def problem(request: pytest.FixtureRequest) -> Problem:
    return make_mlp_problem() if request.param == "mlp" else make_cnn_problem()
