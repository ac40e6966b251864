"""Seeded random probe vectors, generated on the CPU so a seed gives the same vectors on every device."""

from __future__ import annotations

import torch


def rademacher(count: int, n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``(count, n)`` entries ±1 with equal probability, in ``like``'s dtype and device."""
    signs = torch.randint(0, 2, (count, n), generator=generator, dtype=torch.int8)
    return (signs.to(like.dtype) * 2 - 1).to(like.device)


def unit_gaussian(count: int, n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``(count, n)`` rows uniform on the unit sphere (normalised Gaussians), in ``like``'s dtype and device."""
    rows = torch.randn(count, n, generator=generator, dtype=torch.float64)
    rows = rows / rows.norm(dim=1, keepdim=True)
    return rows.to(device=like.device, dtype=like.dtype)
