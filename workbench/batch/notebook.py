"""What a batch notebook calls: its parameters cell's values into a validated ``TrainConfig``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.batch.grid import CONFIG_FIELDS
from workbench.runs import QUICK_DEMO_CHANGES
from workbench.train import TrainConfig


def config_from_parameters(namespace: Mapping[str, Any], *, quick: bool = False) -> TrainConfig:
    """The ``TrainConfig`` of a notebook's parameters: every name in ``namespace`` that is a TrainConfig field.

    A notebook calls ``config_from_parameters(globals(), quick=quick)`` right after its ``parameters`` cell, so the
    values papermill injects (or the cell's own literals) become the run's config; fields the notebook does not
    declare keep TrainConfig's defaults.

    Args:
        namespace: the notebook's global names.
        quick: shrink the run to a smoke test of a few seconds (``workbench.runs.QUICK_DEMO_CHANGES``).

    Raises:
        ValueError: for an invalid value, naming the option and what it allows.
    """
    config = TrainConfig.from_dict({name: namespace[name] for name in CONFIG_FIELDS if name in namespace})
    return config.replace(**QUICK_DEMO_CHANGES) if quick else config
