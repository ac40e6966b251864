"""The full description of a training run: validated on creation, JSON round-trippable."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench._checks import check_choice, check_float, check_int
from workbench.optim.registry import OPTION_NAMES, optimizer_entry

SCHEDULES = ("constant", "cosine", "step")
#: How ρ moves during training: kept constant, or proportional to the learning rate (GSAM's ρ_t = ρ·lr_t/lr).
RHO_SCHEDULES = ("constant", "lr")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; the same config and seed give the same history on CPU.

    Data and model are named (see ``workbench.datasets.DATASETS`` and ``workbench.models.MODELS``) with
    their own options. The optimizer is named too (``workbench.optim.OPTIMIZERS``); its options (``rho``,
    ``alpha``, ``freq``, ``power_iters``, ``refresh``, ``eta``, ``normalize_direction``, ``angle_gate``,
    ``orientation``: one field per option any registered optimizer takes) default to the optimizer's paper values
    when left ``None`` (``refresh``: to the Rayleigh–Ritz estimate, measured better than the published power
    iteration; see ``workbench.optim.EigenTracker``), and setting one the optimizer does not take is an error.
    ``rho_schedule="lr"`` moves ρ with the learning rate (ρ_t = ρ·lr_t/lr, as GSAM does). Training lasts ``steps``
    optimizer steps if given, else ``epochs`` epochs. Probes (λ1 and v1 by warm-started Lanczos, trace by Hutch++,
    angles) run every ``probe_every`` steps on a fixed probe batch of ``probe_batch_size`` training samples;
    ``probe_every=None`` turns them off.
    """

    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = "cnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rho: float | None = None
    alpha: float | None = None
    freq: int | None = None
    power_iters: int | None = None
    refresh: str | None = None
    eta: float | None = None
    normalize_direction: bool | None = None
    angle_gate: bool | None = None
    orientation: str | None = None
    rho_schedule: str = "constant"
    batch_size: int = 128
    epochs: int = 10
    steps: int | None = None
    schedule: str = "cosine"
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    probe_every: int | None = 50
    probe_batch_size: int = 512
    probe_top_k: int = 1
    probe_trace: bool = True
    trace_samples: int = 30
    eval_every: int | None = None
    checkpoint_every: int | None = None
    divergence_factor: float = 1e3
    seed: int = 0
    device: str = "auto"
    amp: bool = False

    def __post_init__(self) -> None:
        entry = optimizer_entry(self.optimizer)
        entry.check_options(self.optimizer_options)
        check_choice("rho_schedule", self.rho_schedule, RHO_SCHEDULES)
        if self.rho_schedule != "constant" and "rho" not in entry.option_names:
            raise ValueError(
                f"rho_schedule {self.rho_schedule!r} needs an optimizer that takes rho; {self.optimizer!r} does not"
            )
        check_float("lr", self.lr, minimum=0.0, min_inclusive=False)
        check_float("momentum", self.momentum, minimum=0.0, maximum=1.0, max_inclusive=False)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("epochs", self.epochs, minimum=1)
        if self.steps is not None:
            check_int("steps", self.steps, minimum=1)
        check_choice("schedule", self.schedule, SCHEDULES)
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        for milestone in self.lr_milestones:
            check_float("lr_milestones", milestone, minimum=0.0, maximum=1.0, min_inclusive=False)
        check_float("lr_gamma", self.lr_gamma, minimum=0.0, maximum=1.0, min_inclusive=False)
        if self.probe_every is not None:
            check_int("probe_every", self.probe_every, minimum=1)
        check_int("probe_batch_size", self.probe_batch_size, minimum=1)
        check_int("probe_top_k", self.probe_top_k, minimum=1, maximum=20)
        check_int("trace_samples", self.trace_samples, minimum=6)
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, minimum=1)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, minimum=1)
        check_float("divergence_factor", self.divergence_factor, minimum=1.0, min_inclusive=False)
        check_int("seed", self.seed, minimum=0)
        for name in ("probe_trace", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("dataset_options", "model_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of option names to values, got {getattr(self, name)!r}")

    @property
    def optimizer_options(self) -> dict[str, Any]:
        """The optimizer options this config sets (the fields of ``OPTION_NAMES`` that are not ``None``)."""
        return {name: getattr(self, name) for name in OPTION_NAMES if getattr(self, name) is not None}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        values = dataclasses.asdict(self)
        values["lr_milestones"] = list(self.lr_milestones)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from plain values; an unknown key is a ValueError that lists the allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown config option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a JSON (or YAML, by suffix) config file."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of config options, got {type(values).__name__}")
        return cls.from_dict(values)
