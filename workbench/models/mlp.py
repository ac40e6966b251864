"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench._checks import check_int
from workbench.models.layers import activation_layer, check_activation, check_input_shape, check_norm, norm_layer


class MLP(nn.Module):
    """``Flatten → [Linear → norm → activation] × len(hidden_sizes) → Linear``.

    Hidden linear layers carry a bias only without BatchNorm (BatchNorm's shift makes it redundant).
    With no hidden sizes this is multinomial logistic regression.

    Shapes: input ``(B, *input_shape)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self, in_features: int, num_classes: int, hidden_sizes: Sequence[int], activation: str, norm: str
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden_sizes:
            layers += [
                nn.Linear(width, size, bias=norm == "none"),
                norm_layer(norm, size, 0),
                activation_layer(activation),
            ]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_mlp(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    hidden_sizes: Sequence[int] = (128, 128),
    activation: str = "relu",
    norm: str = "none",
) -> MLP:
    """An MLP for any input shape (flattened).

    Args:
        input_shape: per-sample shape, 1 to 3 dims.
        num_classes: outputs.
        hidden_sizes: widths of the hidden layers, each >= 1; empty gives logistic regression.
        activation: one of ``ACTIVATIONS``.
        norm: ``"none"`` or ``"batch"`` (BatchNorm1d after each hidden linear layer).
    """
    shape = check_input_shape(input_shape, "mlp", (1, 2, 3))
    if isinstance(hidden_sizes, str | bytes) or not isinstance(hidden_sizes, Sequence):
        raise ValueError(f"hidden_sizes must be a sequence of layer widths (ints >= 1), got {hidden_sizes!r}")
    sizes = [check_int(f"hidden_sizes[{i}]", size, minimum=1) for i, size in enumerate(hidden_sizes)]
    return MLP(math.prod(shape), num_classes, sizes, check_activation(activation), check_norm(norm))
