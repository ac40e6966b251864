"""ResNet-18 in its CIFAR form (He et al. 2016 blocks; 3×3 stem, no max-pool), as in kuangliu/pytorch-cifar."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workbench._checks import check_int
from workbench.models.layers import check_input_shape, check_norm, norm_layer

RESNET18_BLOCKS = (2, 2, 2, 2)


class BasicBlock(nn.Module):
    """``relu(norm(conv3×3(relu(norm(conv3×3(x))))) + shortcut(x))``; the shortcut is a strided 1×1 convolution
    with norm when the shape changes, else the identity. Shapes: ``(B, C_in, H, W)`` → ``(B, C_out, H/s, W/s)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = norm_layer(norm, out_channels, 2)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.norm2 = norm_layer(norm, out_channels, 2)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias), norm_layer(norm, out_channels, 2)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3×3 stem → four stages of basic blocks (``width``, 2·, 4·, 8·``width`` channels; strides 1, 2, 2, 2) →
    global average pool → linear. Shapes: ``(B, C, H, W)`` → ``(B, num_classes)``."""

    def __init__(
        self, in_channels: int, num_classes: int, blocks_per_stage: Sequence[int], width: int, norm: str
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=norm == "none")
        self.stem_norm = norm_layer(norm, width, 2)
        blocks: list[nn.Module] = []
        channels = width
        for stage, count in enumerate(blocks_per_stage):
            out = width * 2**stage
            for index in range(count):
                blocks.append(BasicBlock(channels, out, 2 if stage > 0 and index == 0 else 1, norm))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.stem_norm(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


def build_resnet18(
    *, input_shape: Sequence[int], num_classes: int, width: int = 64, norm: str = "batch"
) -> CifarResNet:
    """CIFAR ResNet-18 (11,173,962 parameters for 10 classes at ``width=64`` with BatchNorm).

    Args:
        input_shape: ``(C, H, W)``; any size works (the head pools globally), 32×32 is the design point.
        num_classes: outputs.
        width: channels of the first stage (64 in the paper; smaller for quick CPU runs), >= 1.
        norm: ``"batch"`` or ``"none"`` (no BatchNorm; convolutions then carry biases).
    """
    shape = check_input_shape(input_shape, "resnet18", (3,))
    width = check_int("width", width, minimum=1)
    return CifarResNet(shape[0], num_classes, RESNET18_BLOCKS, width, check_norm(norm))
