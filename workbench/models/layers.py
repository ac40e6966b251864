"""Building blocks shared by the models: the norm and activation switches, and input-shape checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from workbench._checks import check_choice

NORMS = ("batch", "none")
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}
ACTIVATIONS = tuple(_ACTIVATIONS)


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is ``"batch"`` or ``"none"``, else raise a ValueError naming both."""
    return check_choice("norm", norm, NORMS)


def check_activation(activation: str) -> str:
    """Return ``activation`` if it is one of ``ACTIVATIONS``, else raise a ValueError listing them."""
    return check_choice("activation", activation, ACTIVATIONS)


def norm_layer(norm: str, channels: int, spatial_dims: int) -> nn.Module:
    """BatchNorm over ``channels`` for inputs with 0 or 1 (``BatchNorm1d``) or 2 (``BatchNorm2d``) spatial dims;
    ``nn.Identity()`` for ``norm="none"``."""
    if norm == "none":
        return nn.Identity()
    return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm1d(channels)


def activation_layer(activation: str) -> nn.Module:
    """A fresh activation module by name (one of ``ACTIVATIONS``)."""
    return _ACTIVATIONS[check_activation(activation)]()


def check_input_shape(input_shape: Any, model: str, dims: Sequence[int]) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple of positive ints whose length is one of ``dims``.

    Raises:
        ValueError: naming ``input_shape``, the model and the shapes it accepts.
    """
    forms = {1: "(D,)", 2: "(C, L)", 3: "(C, H, W)"}
    accepted = " or ".join(forms[d] for d in dims)
    if (
        not isinstance(input_shape, Sequence)
        or len(input_shape) not in dims
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_shape)
    ):
        raise ValueError(f"input_shape for {model!r} must be {accepted} with positive sizes, got {input_shape!r}")
    return tuple(input_shape)


def halvings(size: int) -> int:
    """How many times a positive length ``size`` can be halved (rounding down) and stay >= 1: ``floor(log2(size))``."""
    return size.bit_length() - 1
