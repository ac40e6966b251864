"""A user's own model, data and loss for live runs: every run the dashboard or a LiveRun starts from it trains a fresh
copy of the model's initial weights, so runs compare from the same start."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.losses import BatchLoss, ModelLoss
from workbench.train.evaluate import Metrics


@dataclass
class CustomSetup:
    """What ``Trainer`` takes beside the config when you bring your own (see ``Trainer``'s arguments).

    Attributes:
        model: your module; it is copied at construction (its weights then are every run's start), never trained.
        train_data, test_data, loss_fn, metrics_fn, probe_data: as for ``Trainer``.
    """

    model: torch.nn.Module | None = None
    train_data: Iterable[Any] | None = None
    test_data: Iterable[Any] | None = None
    loss_fn: ModelLoss | BatchLoss | None = None
    metrics_fn: Metrics | None = None
    probe_data: Any = None
    _initial: torch.nn.Module | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.model is not None and not isinstance(self.model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        if self.model is None and self.train_data is None:
            raise ValueError("a custom setup needs model= and/or train_data=")
        self._initial = None if self.model is None else copy.deepcopy(self.model)

    def trainer_arguments(self) -> dict[str, Any]:
        """Keyword arguments for one run's ``Trainer``: a fresh copy of the initial model and the rest as given."""
        arguments = {
            "train_data": self.train_data,
            "test_data": self.test_data,
            "loss_fn": self.loss_fn,
            "metrics_fn": self.metrics_fn,
            "probe_data": self.probe_data,
        }
        if self._initial is not None:
            arguments["model"] = copy.deepcopy(self._initial)
        return arguments
