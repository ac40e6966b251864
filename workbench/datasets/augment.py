"""Batch-level image augmentation on tensors: random crop after padding, and horizontal flip.

It runs on whatever device the batch lives on (one ``gather``, no per-sample Python loop), and draws its random
offsets on the CPU from ``generator`` so a seed gives the same augmentation on every device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from workbench._checks import check_int
from workbench.datasets.splits import BatchAugment


def random_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    padding: int,
    fill: Sequence[float],
) -> torch.Tensor:
    """Pad, crop back to size at a random offset, and flip left-right with probability 1/2, per image.

    This is torchvision's ``RandomCrop(size, padding)`` followed by ``RandomHorizontalFlip()``, for a whole batch.

    Args:
        images: ``(B, C, H, W)`` batch.
        generator: CPU generator for the offsets and flips (``None``: torch's global generator).
        padding: pixels added on each side before cropping; offsets are uniform in ``[0, 2 * padding]``.
        fill: ``C`` values the padding takes, one per channel (for standardised images, the value of black).

    Returns:
        ``(B, C, H, W)`` augmented batch, same dtype and device.

    Raises:
        ValueError: for a batch that is not 4-D, a negative ``padding`` or ``fill`` of the wrong length.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    padding = check_int("padding", padding, minimum=0)
    batch, channels, height, width = images.shape
    if len(fill) != channels:
        raise ValueError(f"fill must hold one value per channel ({channels}), got {len(fill)}")
    padded_height, padded_width = height + 2 * padding, width + 2 * padding
    fill_values = torch.tensor(list(fill), dtype=images.dtype, device=images.device).view(1, channels, 1, 1)
    padded = fill_values.expand(batch, channels, padded_height, padded_width).clone()
    padded[:, :, padding : padding + height, padding : padding + width] = images
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator).to(images.device)
    flips = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * padded_width + cols[:, None, :]).view(batch, 1, height * width)
    crops = padded.view(batch, channels, -1).gather(2, index.expand(batch, channels, height * width))
    return crops.view(batch, channels, height, width)


def crop_flip_for(padding: int) -> Callable[[tuple[float, ...], tuple[float, ...]], BatchAugment]:
    """Factory for ``standardized_splits``: ``(mean, std) -> random_crop_flip`` padding with standardised black."""

    def build(mean: tuple[float, ...], std: tuple[float, ...]) -> BatchAugment:
        black = tuple(-m / s for m, s in zip(mean, std, strict=True))
        return partial(random_crop_flip, padding=padding, fill=black)

    return build
