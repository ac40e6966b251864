"""random_crop_flip: every output is one crop (and maybe flip) of the padded input; seeded; bad input named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.datasets import random_crop_flip


def candidates(image: torch.Tensor, padding: int, fill: list[float]) -> list[torch.Tensor]:
    """All (2p+1)² crops of the padded image, each unflipped and flipped."""
    channels, height, width = image.shape
    padded = torch.stack([F.pad(image[c], (padding,) * 4, value=fill[c]) for c in range(channels)])
    crops = [
        padded[:, top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops]


def test_each_image_is_a_padded_crop_or_its_mirror() -> None:
    images = torch.randn(12, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    fill = [10.0, -10.0]
    out = random_crop_flip(images, torch.Generator().manual_seed(1), padding=2, fill=fill)
    assert out.shape == images.shape
    for image, result in zip(images, out, strict=True):
        assert any(torch.equal(result, c) for c in candidates(image, 2, fill))
    flipped = [any(torch.equal(r, c) for c in candidates(i, 2, fill)[25:]) for i, r in zip(images, out, strict=True)]
    assert any(flipped) and not all(flipped)


def test_seeded_generator_repeats_and_zero_padding_only_flips() -> None:
    images = torch.randn(8, 3, 4, 4)
    a = random_crop_flip(images, torch.Generator().manual_seed(3), padding=1, fill=[0.0] * 3)
    b = random_crop_flip(images, torch.Generator().manual_seed(3), padding=1, fill=[0.0] * 3)
    assert torch.equal(a, b)
    unpadded = random_crop_flip(images, torch.Generator().manual_seed(3), padding=0, fill=[0.0] * 3)
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(unpadded, images, strict=True))


@pytest.mark.parametrize(
    ("images", "padding", "fill", "message"),
    [
        (torch.zeros(3, 4, 4), 1, [0.0] * 3, r"images must be a \(B, C, H, W\) batch"),
        (torch.zeros(2, 3, 4, 4), -1, [0.0] * 3, "padding must be an integer >= 0"),
        (torch.zeros(2, 3, 4, 4), 1, [0.0] * 2, r"fill must hold one value per channel \(3\)"),
    ],
)
def test_bad_input_is_named(images: torch.Tensor, padding: int, fill: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_crop_flip(images, padding=padding, fill=fill)
