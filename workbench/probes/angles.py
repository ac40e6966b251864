"""Cosine and angle (in degrees) between two parameter-space vectors, e.g. a gradient and an eigenvector.

Both functions take flat tensors or per-parameter lists (flattened in order) and compute in float64. A zero
vector (or one holding inf/NaN) has no direction: the result is then NaN, never an arbitrary number or an
exception, so that a probe schedule can log it and go on. Eigenvectors have an arbitrary sign;
``sign_invariant=True`` compares the lines they span instead (|cos|, the acute angle in [0°, 90°]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from workbench.params import flatten

Vector = torch.Tensor | Sequence[torch.Tensor]


def cosine(a: Vector, b: Vector, *, sign_invariant: bool = False) -> float:
    """cos∠(a, b) = ⟨a, b⟩ / (‖a‖·‖b‖), in [-1, 1] ([0, 1] with ``sign_invariant``); NaN for a zero vector.

    Args:
        a, b: flat tensors ``(n,)`` or per-parameter lists with n elements in all.
        sign_invariant: return |cos|, the cosine of the acute angle between the lines through a and b.

    Raises:
        ValueError: when a or b is not a 1-D tensor / list of tensors, or their sizes differ.
    """
    unit_a, unit_b = _unit_pair(a, b)
    if unit_a is None or unit_b is None:
        return math.nan
    value = float(torch.dot(unit_a, unit_b).clamp(-1.0, 1.0))
    return abs(value) if sign_invariant else value


def angle_degrees(a: Vector, b: Vector, *, sign_invariant: bool = False) -> float:
    """∠(a, b) in degrees, in [0, 180] ([0, 90] with ``sign_invariant``); NaN for a zero vector.

    Computed as 2·atan2(‖â − b̂‖, ‖â + b̂‖) for unit â, b̂, which stays accurate near 0° and 180° where
    acos(cos) loses half the digits.

    Args:
        a, b: flat tensors ``(n,)`` or per-parameter lists with n elements in all.
        sign_invariant: return the acute angle min(∠, 180° − ∠) between the lines through a and b.

    Raises:
        ValueError: when a or b is not a 1-D tensor / list of tensors, or their sizes differ.
    """
    unit_a, unit_b = _unit_pair(a, b)
    if unit_a is None or unit_b is None:
        return math.nan
    radians = 2.0 * math.atan2(float((unit_a - unit_b).norm()), float((unit_a + unit_b).norm()))
    degrees = math.degrees(radians)
    return min(degrees, 180.0 - degrees) if sign_invariant else degrees


def _unit_pair(a: Vector, b: Vector) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    flat_a, flat_b = _as_vector(a, "a"), _as_vector(b, "b")
    if flat_a.numel() != flat_b.numel():
        raise ValueError(f"a and b must have the same number of elements, got {flat_a.numel()} and {flat_b.numel()}")
    flat_b = flat_b.to(flat_a.device)
    return _unit(flat_a), _unit(flat_b)


def _as_vector(vector: Vector, name: str) -> torch.Tensor:
    if isinstance(vector, torch.Tensor):
        if vector.dim() != 1:
            raise ValueError(f"{name} must be a flat (1-D) tensor or a list of tensors, got {tuple(vector.shape)}")
        flat = vector
    else:
        pieces = list(vector)
        if not pieces or not all(isinstance(piece, torch.Tensor) for piece in pieces):
            raise ValueError(f"{name} must be a flat tensor (1-D) or a non-empty list of tensors")
        flat = flatten(pieces)
    return flat.detach().to(torch.float64)


def _unit(vector: torch.Tensor) -> torch.Tensor | None:
    norm = vector.norm()
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        return None
    return vector / norm
