"""Flat-vector views of parameter lists (the coordinates every curvature routine works in)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one flat vector of shape ``(sum of numels,)``."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector ``(n,)`` (or a batch ``(b, n)``) into views shaped like ``like`` (with ``b`` leading)."""
    lead = flat.shape[:-1]
    chunks = torch.split(flat, [t.numel() for t in like], dim=-1)
    return [c.reshape(*lead, *t.shape) for c, t in zip(chunks, like, strict=True)]


def as_flat(vector: torch.Tensor | Sequence[torch.Tensor], like: Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """Return ``vector`` as a flat tensor, accepting either a flat vector or a per-parameter list.

    Raises:
        ValueError: naming ``name`` when sizes or shapes do not match ``like``.
    """
    numel = sum(t.numel() for t in like)
    if isinstance(vector, torch.Tensor):
        if vector.dim() != 1 or vector.numel() != numel:
            raise ValueError(f"{name} must be a flat tensor of shape ({numel},), got shape {tuple(vector.shape)}")
        return vector
    pieces = list(vector)
    if len(pieces) != len(like):
        raise ValueError(f"{name} must hold {len(like)} tensors (one per parameter), got {len(pieces)}")
    for index, (piece, ref) in enumerate(zip(pieces, like, strict=True)):
        if tuple(piece.shape) != tuple(ref.shape):
            raise ValueError(
                f"{name}[{index}] must have shape {tuple(ref.shape)} like its parameter, got {tuple(piece.shape)}"
            )
    return flatten(pieces)
