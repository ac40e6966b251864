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
#: Mixed-precision modes: none, bfloat16 autocast, float16 autocast with dynamic loss scaling.
AMP_MODES = ("off", "bf16", "fp16")
#: How the processes of a distributed run perturb (SAM family): each with the gradient of its own shard (the SAM
#: paper's practice, m-sharpness), or all with the whole batch's gradient (one more all-reduce per step).
PERTURBATION_SYNCS = ("local", "global")


def _option(default: Any, help: str, flag: str | None = None) -> Any:
    """A config field with its one-line help (read by the command line) and, when ``--<name>`` will not do, its
    command-line flag."""
    return field(default=default, metadata={"help": help, "flag": flag})


def _optimizer_option() -> Any:
    """A field for an option of the registered optimizers (its help is the registry's; None: the paper value)."""
    return field(default=None, metadata={"optimizer_option": True})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; the same config and seed give the same history on CPU.

    Data and model are named (see ``workbench.datasets.DATASETS`` and ``workbench.models.MODELS``) with
    their own options, or ``None`` when the Trainer is given a user's own model and data (it records them so).
    The optimizer is named too (``workbench.optim.OPTIMIZERS``); its options (``rho``, ``alpha``, ``freq``,
    ``power_iters``, ``refresh``, ``refresh_tol``, ``eta``, ``normalize_direction``, ``angle_gate``,
    ``orientation``: one field per option any registered optimizer takes) default to the optimizer's paper values
    when left ``None`` (``refresh``: to the Rayleigh–Ritz estimate, measured better than the published power
    iteration; see ``workbench.optim.EigenTracker``), and setting one the optimizer does not take is an error.
    ``m`` > 1 (m-sharpness) cuts each batch into m chunks that ascend with their own ε and averages their
    adversarial gradients; ``perturbation_sync`` says how the processes of a distributed run perturb
    (``workbench.distributed.passes``: ``"local"``, each with its own shard's gradient, equals ``m`` = the number of
    processes; ``"global"``, one ε from the whole batch, equals a single process). ``batch_size`` is the batch of a
    step over all processes. ``rho_schedule="lr"`` moves ρ with the learning rate (ρ_t = ρ·lr_t/lr, as GSAM does).
    Training lasts ``steps`` optimizer steps if given, else ``epochs`` epochs. Probes (λ1 and v1 by warm-started
    Lanczos, trace by Hutch++, angles, weight and logit norms) run every ``probe_every`` steps on a fixed probe
    batch of ``probe_batch_size`` training samples; ``probe_every=None`` turns them off. Two opt-in probes ride on
    the same schedule: ``probe_mechanism`` (∇λ1 and the step decomposition, ``workbench.train.mechanism_probe``)
    and ``probe_adaptive_rho`` (the adaptive sharpness, ``workbench.train.scale_probe``).
    """

    dataset: str | None = _option("mnist1d", "dataset name (its options: --dataset-option KEY=VALUE)")
    dataset_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "dataset loader options"})
    model: str | None = _option("cnn", "model name (its options: --model-option KEY=VALUE)")
    model_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "model builder options"})
    optimizer: str = _option("sgd", "optimizer name; its options below default to its paper values")
    lr: float = _option(0.05, "base learning rate of SGD, > 0 (the schedule multiplies it)")
    momentum: float = _option(0.9, "SGD momentum, in [0, 1)")
    weight_decay: float = _option(5e-4, "SGD weight decay (L2), >= 0")
    rho: float | None = _optimizer_option()
    alpha: float | None = _optimizer_option()
    freq: int | None = _optimizer_option()
    power_iters: int | None = _optimizer_option()
    refresh: str | None = _optimizer_option()
    refresh_tol: float | None = _optimizer_option()
    eta: float | None = _optimizer_option()
    normalize_direction: bool | None = _optimizer_option()
    angle_gate: bool | None = _optimizer_option()
    orientation: str | None = _optimizer_option()
    rho_schedule: str = _option("constant", "constant ρ, or lr: ρ·lr_t/lr, ρ moving with the learning rate (GSAM)")
    batch_size: int = _option(128, "mini-batch size, >= 1 (the last partial batch of an epoch is dropped)")
    epochs: int = _option(10, "epochs to train when --steps is not given, >= 1")
    steps: int | None = _option(None, "optimizer steps to train (none: --epochs epochs)")
    schedule: str = _option("cosine", "learning-rate schedule over the run")
    lr_milestones: tuple[float, ...] = _option((0.5, 0.75), "step schedule: fractions of the run where lr drops")
    lr_gamma: float = _option(0.1, "step schedule: factor at each milestone, in (0, 1]")
    probe_every: int | None = _option(50, "steps between curvature probes (λ1, trace, angles); none: no probes")
    probe_batch_size: int = _option(512, "training samples in the fixed probe batch, >= 1")
    probe_top_k: int = _option(1, "top Hessian eigenvalues logged per probe, in [1, 20]")
    probe_trace: bool = _option(True, "also estimate tr(H) by Hutch++ at each probe")
    trace_samples: int = _option(30, "Hessian-vector products per trace estimate, >= 6")
    probe_mechanism: bool = _option(
        False, "also measure ∇λ1 at each probe and split the probed step: its λ1 rate, SAM's remainder r (costs HVPs)"
    )
    probe_adaptive_rho: float | None = _option(
        None, "ρ > 0 of the adaptive (ASAM-scaled) sharpness logged at each probe (none: not measured)"
    )
    probe_adaptive_steps: int = _option(5, "ascent steps (gradients) per adaptive-sharpness probe, >= 1")
    eval_every: int | None = _option(None, "steps between test evaluations (none: once per epoch)")
    checkpoint_every: int | None = _option(None, "steps between checkpoints (none: at pauses and at the end)")
    divergence_factor: float = _option(1e3, "stop as diverged when the loss exceeds this × the first loss, > 1")
    seed: int = _option(0, "seed of data split, initial weights, batch order and probes, >= 0")
    device: str = _option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    amp: str = _option("off", "mixed precision: bf16 autocast, or fp16 autocast with a GradScaler (off: float32)")
    micro_batches: int = _option(1, "split each batch into this many micro-batches, accumulating their gradients")
    # --m would be an ambiguous prefix of torchrun's own options (--master-port, ...), which it parses first
    m: int = _option(
        1, "m-sharpness: cut each batch into m chunks, each ascending with its own ε (SAM family)", "--m-sharpness"
    )
    perturbation_sync: str = _option(
        "local", "several processes: local (each its own ε, one all-reduce) or global (one shared ε, two)"
    )
    tensorboard: bool = _option(False, "also write the logged scalars as TensorBoard events in the run folder")

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
        if not isinstance(self.lr_milestones, list | tuple):
            raise ValueError(
                f"lr_milestones must be a list of fractions in (0, 1] (e.g. [0.5, 0.75]), got {self.lr_milestones!r}"
            )
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        for milestone in self.lr_milestones:
            check_float("lr_milestones", milestone, minimum=0.0, maximum=1.0, min_inclusive=False)
        check_float("lr_gamma", self.lr_gamma, minimum=0.0, maximum=1.0, min_inclusive=False)
        if self.probe_every is not None:
            check_int("probe_every", self.probe_every, minimum=1)
        check_int("probe_batch_size", self.probe_batch_size, minimum=1)
        check_int("probe_top_k", self.probe_top_k, minimum=1, maximum=20)
        check_int("trace_samples", self.trace_samples, minimum=6)
        if self.probe_adaptive_rho is not None:
            check_float("probe_adaptive_rho", self.probe_adaptive_rho, minimum=0.0, min_inclusive=False)
        check_int("probe_adaptive_steps", self.probe_adaptive_steps, minimum=1)
        for name in ("probe_mechanism", "probe_adaptive_rho"):
            if getattr(self, name) not in (None, False) and self.probe_every is None:
                raise ValueError(f"{name} runs on the probe schedule: set probe_every too (it is none)")
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, minimum=1)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, minimum=1)
        check_float("divergence_factor", self.divergence_factor, minimum=1.0, min_inclusive=False)
        check_int("seed", self.seed, minimum=0)
        check_choice("amp", self.amp, AMP_MODES)
        check_int("micro_batches", self.micro_batches, minimum=1)
        check_int("m", self.m, minimum=1)
        check_choice("perturbation_sync", self.perturbation_sync, PERTURBATION_SYNCS)
        if self.m > 1:
            self._check_m(entry)
        for name in ("probe_trace", "probe_mechanism", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("dataset_options", "model_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of option names to values, got {getattr(self, name)!r}")

    def _check_m(self, entry: Any) -> None:
        """m > 1 needs a perturbation to cut into chunks, local sync, and no float16 loss scaling."""
        if "rho" not in entry.option_names:
            raise ValueError(f"m={self.m} cuts the batch into chunks with their own ε; {self.optimizer!r} has none")
        if self.perturbation_sync != "local":
            raise ValueError(f"m={self.m} gives each chunk its own ε, which needs perturbation_sync='local'")
        if self.amp == "fp16":
            raise ValueError(f"m={self.m} is not supported with amp='fp16' (loss-scaled chunk gradients); use bf16")

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
        unknown = sorted(map(str, set(values) - set(allowed)))
        if unknown:
            raise ValueError(f"unknown config option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a JSON (or YAML, by suffix) config file: a mapping of option names to values (``{}``: defaults).

        Raises:
            ValueError: naming the file when it is missing, a directory, unreadable, empty, not valid JSON/YAML
                (YAML tags that build Python objects included), not a mapping, or not a valid config.
        """
        path = Path(path)
        if not path.exists():
            raise ValueError(f"config file {path} does not exist")
        if not path.is_file():
            raise ValueError(f"config file {path} is not a file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"config file {path} cannot be read: {error}") from None
        if not text.strip():
            raise ValueError(f"config file {path} is empty; write {{}} in it to mean every default")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                try:
                    values = yaml.safe_load(text)
                except yaml.YAMLError as error:
                    raise ValueError(f"not valid YAML: {error}") from None
            else:
                try:
                    values = json.loads(text)
                except json.JSONDecodeError as error:
                    raise ValueError(f"not valid JSON: {error}") from None
            if not isinstance(values, dict):
                raise ValueError(f"it must hold a mapping of config options, got {type(values).__name__}")
            return cls.from_dict(values)
        except ValueError as error:
            raise ValueError(f"config file {path}: {error}") from None
