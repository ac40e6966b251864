"""Wide residual network WRN-depth-k (Zagoruyko & Komodakis 2016), pre-activation blocks, CIFAR form."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workbench._checks import check_float, check_int
from workbench.models.layers import check_input_shape, check_norm, norm_layer


class WideBlock(nn.Module):
    """Pre-activation block: ``conv3×3(dropout(relu(norm(conv3×3(relu(norm(x))))))) + shortcut``.

    When the shape changes the shortcut is a strided 1×1 convolution of the pre-activated input, else ``x``.
    Shapes: ``(B, C_in, H, W)`` → ``(B, C_out, H/s, W/s)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.norm1 = norm_layer(norm, in_channels, 2)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)
        self.norm2 = norm_layer(norm, out_channels, 2)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.norm1(x))
        out = self.conv2(self.dropout(F.relu(self.norm2(self.conv1(activated)))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """3×3 stem (16 channels) → three groups of ``(depth - 4) / 6`` wide blocks with 16k, 32k, 64k channels
    (strides 1, 2, 2) → norm → relu → global average pool → linear. Shapes: ``(B, C, H, W)`` → ``(B, num_classes)``.

    Initialisation follows the reference code: He-normal (fan-out) convolutions, zero linear bias.
    """

    def __init__(
        self, in_channels: int, num_classes: int, depth: int, widen_factor: int, dropout: float, norm: str
    ) -> None:
        super().__init__()
        blocks_per_group = (depth - 4) // 6
        stem_channels = 16
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=norm == "none")
        blocks: list[nn.Module] = []
        channels = stem_channels
        for group in range(3):
            out = stem_channels * 2**group * widen_factor
            for index in range(blocks_per_group):
                blocks.append(WideBlock(channels, out, 2 if group > 0 and index == 0 else 1, dropout, norm))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = norm_layer(norm, channels, 2)
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.final_norm(self.blocks(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


def build_wideresnet(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.0,
    norm: str = "batch",
) -> WideResNet:
    """WRN-``depth``-``widen_factor`` (WRN-28-10: 36,479,194 parameters for 10 classes).

    Args:
        input_shape: ``(C, H, W)``; any size works (the head pools globally), 32×32 is the design point.
        num_classes: outputs.
        depth: total depth ``6n + 4`` with ``n >= 1`` blocks per group (10, 16, 22, 28, 40, ...).
        widen_factor: channel multiplier ``k`` >= 1.
        dropout: drop probability between the two convolutions of each block, in [0, 1).
        norm: ``"batch"`` or ``"none"`` (no BatchNorm; convolutions then carry biases). Nothing else changes, so
            without BatchNorm the He initialisation lets activations grow with depth (each block adds its branch).
    """
    shape = check_input_shape(input_shape, "wideresnet", (3,))
    depth = check_int("depth", depth, minimum=10)
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
    widen_factor = check_int("widen_factor", widen_factor, minimum=1)
    dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0, max_inclusive=False)
    return WideResNet(shape[0], num_classes, depth, widen_factor, dropout, check_norm(norm))
