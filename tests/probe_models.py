"""Small models for the probe tests: a quadratic with a known Hessian and a conv net with BatchNorm statistics."""

from __future__ import annotations

import torch
from torch import nn

from .conftest import SmallConvNet


class Quadratic(nn.Module):
    """L(θ) = ½ θᵀAθ, returned by the forward pass (the inputs only carry a batch dimension)."""

    def __init__(self, matrix: torch.Tensor, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.register_buffer("matrix", matrix)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.theta @ self.matrix @ self.theta


def identity_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss of a ``Quadratic``: its output itself."""
    return outputs


#: A one-sample batch for ``Quadratic`` (its forward pass ignores the values).
QUADRATIC_DATA = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))


def conv_net_in_train_mode(seed: int, samples: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 ``SmallConvNet`` with non-trivial BatchNorm running statistics, left in train mode (where any
    forward pass would change them), and a batch of 1×8×8 inputs with 3-class targets."""
    torch.manual_seed(seed)
    model = SmallConvNet().double()
    inputs, targets = torch.randn(samples, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (samples,))
    with torch.no_grad():
        model(inputs * 1.5 + 0.3)
    return model.train(), inputs, targets
