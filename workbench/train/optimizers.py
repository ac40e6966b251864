"""Optimizers by name for the training engine, with each paper's defaults where the config says ``None``."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from workbench._checks import check_choice
from workbench.optim import ASAM, SAM, XSAM, EigenSAM
from workbench.train.config import OPTIMIZERS, TrainConfig

_SHARPNESS_OPTIONS = {
    "sgd": (),
    "sam": ("rho",),
    "asam": ("rho",),
    "eigensam": ("rho", "alpha", "freq", "power_iters"),
    "xsam": ("rho", "alpha", "freq", "power_iters"),
}

_CLASSES = {"sam": SAM, "asam": ASAM, "eigensam": EigenSAM, "xsam": XSAM}


def optimizer_options(name: str) -> dict[str, Any]:
    """The sharpness options optimizer ``name`` takes (of rho, alpha, freq, power_iters), mapped to its paper's
    defaults, i.e. what a ``None`` in the config means (for CLIs and widgets, like ``dataset_options``).

    Raises:
        ValueError: for an unknown ``name``, listing the known ones.
    """
    check_choice("name", name, OPTIMIZERS)
    if name == "sgd":
        return {}
    parameters = inspect.signature(_CLASSES[name]).parameters
    return {option: parameters[option].default for option in _SHARPNESS_OPTIONS[name]}


def check_optimizer_options(config: TrainConfig) -> None:
    """Check that ``config`` sets only the sharpness options its optimizer takes (without building anything).

    Raises:
        ValueError: naming the stray options and the ones ``config.optimizer`` takes (e.g. ``alpha`` for SAM).
    """
    accepted = _SHARPNESS_OPTIONS[config.optimizer]
    stray = [name for name in ("rho", "alpha", "freq", "power_iters") if getattr(config, name) is not None]
    stray = [name for name in stray if name not in accepted]
    if stray:
        takes = ", ".join(accepted) or "none of them"
        raise ValueError(f"optimizer {config.optimizer!r} takes no {', '.join(stray)} (it takes: {takes})")


def build_optimizer(config: TrainConfig, model: torch.nn.Module, steps_per_epoch: int) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` over ``model``'s parameters, SGD(momentum, weight decay) as its base.

    Eigen-SAM and X-SAM restart their refresh schedule every epoch (``steps_per_epoch``), as their published
    training loops do, and get ``model`` so BatchNorm statistics are kept from the first pass only.

    Raises:
        ValueError: when an option is set that the chosen optimizer does not take (see ``check_optimizer_options``).
    """
    check_optimizer_options(config)
    base = {"lr": config.lr, "momentum": config.momentum, "weight_decay": config.weight_decay}
    accepted = _SHARPNESS_OPTIONS[config.optimizer]
    extra = {name: getattr(config, name) for name in accepted if getattr(config, name) is not None}
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, **base)
    if config.optimizer == "sam":
        return SAM(params, torch.optim.SGD, model=model, **extra, **base)
    if config.optimizer == "asam":
        return ASAM(params, torch.optim.SGD, model=model, **extra, **base)
    schedule = {"seed": config.seed, "epoch_length": steps_per_epoch, "model": model}
    if config.optimizer == "eigensam":
        return EigenSAM(params, torch.optim.SGD, **extra, **schedule, **base)
    switches = {
        "normalize_direction": config.normalize_direction,
        "angle_gate": config.angle_gate,
        "orientation": config.orientation,
    }
    return XSAM(params, torch.optim.SGD, **extra, **switches, **schedule, **base)
