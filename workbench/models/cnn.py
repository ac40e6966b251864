"""Small convolutional network, 1-D for sequences ``(C, L)`` and 2-D for images ``(C, H, W)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from workbench._checks import check_int
from workbench.models.layers import (
    activation_layer,
    check_activation,
    check_input_shape,
    check_norm,
    halvings,
    norm_layer,
)


class ConvNet(nn.Module):
    """``depth`` stages of ``conv (same padding) → norm → activation → max-pool 2``, then global average pool and a
    linear head. Stage ``i`` has ``width · 2**i`` channels; each stage halves every spatial size.

    Convolutions carry a bias only without BatchNorm. Shapes: input ``(B, C, L)`` or ``(B, C, H, W)`` → logits
    ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        spatial_dims: int,
        width: int,
        depth: int,
        kernel_size: int,
        activation: str,
        norm: str,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv1d
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool1d
        average = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool1d
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in range(depth):
            out = width * 2**stage
            layers += [
                conv(channels, out, kernel_size, padding=kernel_size // 2, bias=norm == "none"),
                norm_layer(norm, out, spatial_dims),
                activation_layer(activation),
                pool(2),
            ]
            channels = out
        layers += [average(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_cnn(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 32,
    depth: int = 3,
    kernel_size: int = 3,
    activation: str = "relu",
    norm: str = "batch",
) -> ConvNet:
    """A small CNN: 1-D for ``input_shape=(C, L)`` (e.g. MNIST-1D), 2-D for ``(C, H, W)`` (digits, CIFAR).

    Args:
        input_shape: ``(C, L)`` or ``(C, H, W)``.
        num_classes: outputs.
        width: channels of the first stage (doubling each stage), >= 1.
        depth: number of stages, from 1 to floor(log2(smallest spatial size)) (each halves the resolution).
        kernel_size: odd convolution size >= 1 (odd keeps "same" padding exact).
        activation: one of ``ACTIVATIONS``.
        norm: ``"batch"`` (BatchNorm after each convolution) or ``"none"``.
    """
    shape = check_input_shape(input_shape, "cnn", (2, 3))
    width = check_int("width", width, minimum=1)
    max_depth = halvings(min(shape[1:]))
    if max_depth < 1:
        raise ValueError(f"input_shape for 'cnn' needs spatial sizes >= 2 (each stage halves them), got {shape}")
    depth = check_int("depth", depth, minimum=1)
    if depth > max_depth:
        raise ValueError(
            f"depth must be an integer in [1, {max_depth}] for input_shape {shape} (each stage halves the "
            f"resolution), got {depth}"
        )
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size}")
    return ConvNet(
        shape[0], num_classes, len(shape) - 1, width, depth, kernel_size, check_activation(activation), check_norm(norm)
    )
