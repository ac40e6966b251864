"""Models by name: ``build_model("cnn", input_shape=(1, 40), num_classes=10, width=16)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from workbench._checks import check_choice, check_int
from workbench._options import check_options, option_defaults
from workbench.models.cnn import build_cnn
from workbench.models.mlp import build_mlp
from workbench.models.resnet import build_resnet18
from workbench.models.transformer import build_transformer
from workbench.models.wideresnet import build_wideresnet

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet18": build_resnet18,
    "wideresnet": build_wideresnet,
    "transformer": build_transformer,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)
_SHARED_ARGS = ("input_shape", "num_classes")


def model_options(name: str) -> dict[str, Any]:
    """The options ``build_model(name, ...)`` accepts, mapped to their defaults (for CLIs and widgets).

    Raises:
        ValueError: for an unknown ``name``, listing the known ones.
    """
    check_choice("model", name, MODELS)
    return option_defaults(_BUILDERS[name], exclude=_SHARED_ARGS)


def model_summary(name: str) -> str:
    """One line on what model ``name`` is (its builder's docstring's first line).

    Raises:
        ValueError: for an unknown ``name``, listing the known ones.
    """
    check_choice("model", name, MODELS)
    return (inspect.getdoc(_BUILDERS[name]) or name).splitlines()[0]


def build_model(
    name: str, *, input_shape: Sequence[int], num_classes: int, seed: int | None = None, **options: Any
) -> nn.Module:
    """Build a classifier by name, on the CPU in float32 (move it with ``.to(device)``).

    Args:
        name: one of ``MODELS``: ``"mlp"`` (any input), ``"cnn"`` (``(C, L)`` → 1-D, ``(C, H, W)`` → 2-D),
            ``"resnet18"``, ``"wideresnet"`` (``(C, H, W)``).
        input_shape: per-sample input shape, e.g. ``DatasetSplits.input_shape``.
        num_classes: number of output logits, >= 2.
        seed: seed of the initial weights; the global RNG state is left as it was. ``None`` draws from (and
            advances) torch's global generator, as plain PyTorch does.
        **options: per-model options (the MLP, CNN and ResNets have ``norm="batch" | "none"``);
            ``model_options(name)`` lists them with their defaults.

    Returns:
        The module; it maps ``(B, *input_shape)`` to logits ``(B, num_classes)``.

    Raises:
        ValueError: for an unknown name or option, an input shape the model cannot take, or an option value out of
            range (naming the allowed values).
    """
    allowed = model_options(name)
    check_options(f"model {name!r}", options, allowed)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    builder = _BUILDERS[name]
    if seed is None:
        return builder(input_shape=input_shape, num_classes=num_classes, **options)
    seed = check_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(input_shape=input_shape, num_classes=num_classes, **options)
