"""The training engine: one loop for live widgets and headless batches, with probes on a schedule.

``Trainer(config).run()`` trains a named model on a named dataset; ``Trainer(config, model=..., train_data=...,
test_data=..., loss_fn=...)`` trains any ``nn.Module`` on any DataLoader with any loss. Either way it logs into a
tidy ``History`` that other threads may read at any time.
``pause()``, ``resume()`` and ``stop()`` are safe from another thread and take effect between steps. A
non-finite or exploding loss ends the run cleanly (status ``"diverged"``) with its history kept. With a run
directory, the config, the history, a checkpoint and a summary are written there as training goes, so a
stopped or crashed run leaves everything computed so far on disk; ``Trainer.from_checkpoint(path)`` continues
a run exactly (same seed → identical history on CPU). While it runs, the trainer holds the run folder's lock
(``RunFolder.lock``); a fresh run replaces the files of a previous run in its folder, a continued one only the
outcome of its previous attempt. Checkpoints are read with ``weights_only=True`` after their checksum matched
(``workbench.train.checkpoint``).

Started by torchrun (``workbench.distributed``), the same Trainer runs in every process: each trains on its shard
of every batch through DistributedDataParallel (``TrainConfig.perturbation_sync`` says how SAM's perturbation is
shared), the probes average their products across the processes, and rank 0 alone evaluates and writes the run
directory; the checkpoint records the number of processes, which a resumed run must match.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.batching import chunks, move_to
from workbench.datasets import DatasetSplits
from workbench.distributed.context import distributed_context, training_device
from workbench.distributed.passes import Replicas, StepPasses, replica_failures
from workbench.distributed.sharding import shard_training_data
from workbench.losses import CROSS_ENTROPY, BatchLoss, ModelLoss, model_loss
from workbench.models import build_model
from workbench.modes import eval_mode
from workbench.optim import optimizer_entry
from workbench.train.checkpoint import (
    check_writer,
    read_checkpoint,
    restore_rng_states,
    rng_states,
    write_checkpoint,
    writer_record,
)
from workbench.train.config import TrainConfig
from workbench.train.control import RunControl
from workbench.train.data import EVAL_BATCH, training_data
from workbench.train.evaluate import Metrics, evaluate
from workbench.train.history import History, final_values
from workbench.train.mechanism_probe import MechanismProbe
from workbench.train.optimizers import build_optimizer
from workbench.train.precision import check_first_loss, mixed_precision
from workbench.train.probing import CurvatureProbe
from workbench.train.run_folder import TENSORBOARD_DIR, RunFolder
from workbench.train.scale_probe import ScaleProbe
from workbench.train.schedule import lr_factor
from workbench.train.tensorboard_sink import TensorBoardSink

#: The headline metrics of a run: their last values are its final metrics.
FINAL_METRICS = ("train_loss", "test_loss", "test_accuracy", "train_accuracy", "lambda_1", "trace")


@dataclass(frozen=True)
class TrainEvent:
    """What a callback receives: ``kind`` is "start", "boundary", "probe", "step", "eval", "pause", "resume" or
    "end".

    "boundary" comes before every step, where the weights, the history and the step counter agree (a checkpoint
    taken there resumes exactly; "step" comes before that step's evaluation). "pause" comes when a pause takes
    effect (history flushed), "resume" when the loop continues.

    ``step`` is the number of steps taken when the event fires, i.e. the index of the current weights: a "step"
    event carries the values the history logged at step ``step - 1`` (the step just taken); "probe" and "eval"
    values are logged at ``step`` itself.
    """

    kind: str
    step: int
    epoch: float
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: status "finished", "stopped" or "diverged", with the reason, and the final metrics as of
    the last evaluation, taken at step ``final_step`` (None: never evaluated; see ``Trainer.final_metrics``)."""

    status: str
    reason: str
    steps: int
    seconds: float
    final: dict[str, float]
    final_step: int | None = None


Callback = Callable[[TrainEvent], None]


class Trainer:
    """Train a model with ``config.optimizer`` on a schedule of probes; see the module docstring.

    Every optimizer steps the same way, ``optimizer.step(closure)``, and is read the same way, through its
    ``last_step`` record (``workbench.optim.WrappedOptimizer``): its scalars are logged as ``opt_<name>``.

    Args:
        config: the run's ``TrainConfig``. When ``model`` or ``train_data`` is given, the run's config records
            ``model=None`` or ``dataset=None`` (with empty options): what it trains was not built by name.
        model: your own ``torch.nn.Module`` (moved to the run's device and trained in place); default: the named
            ``config.model``, built for the named dataset.
        train_data: your own training data: a DataLoader or any sized, re-iterable collection of batches. A batch
            is a tuple/list of tensors (``(inputs, targets)`` for the default loss) or a dict of tensors (Hugging
            Face style), moved to the device by the engine; nothing else is held there (streaming, workers as the
            loader has them). Default: the named ``config.dataset``, held on the device.
        test_data: your own evaluation data, the same form (optional; without it no test metrics are logged).
        loss_fn: ``loss_fn(model, batch)`` → a scalar tensor (mean over the batch), the loss trained on, probed (λ1,
            trace, angles) and evaluated. Default: cross-entropy on ``(inputs, targets)`` batches, with accuracy.
        metrics_fn: ``metrics_fn(model, batch)`` → a dict of scalars (means over the batch), logged at every
            evaluation as ``test_<name>`` and ``train_<name>`` (size-weighted means over the batches).
        probe_data: the batch the curvature probes measure (default: the first ``probe_batch_size`` samples of a
            seeded pass over the training data, fixed for the run).
        run_dir: the run folder (``workbench.train.run_folder``: config, history, checkpoint, summary), or None.
        callbacks: called with a ``TrainEvent`` after each step, probe and evaluation, from the training
            thread; keep them quick (a live chart should batch its redraws).
        data: an already loaded ``DatasetSplits`` matching ``config.dataset`` (saves reloading in notebooks).

    Raises:
        ValueError: naming the argument: options the chosen dataset, model or optimizer does not take; data,
            model or loss that cannot be used (an iterator, an empty loader, a model without trainable
            parameters, a loss that is not a finite scalar at the first step, a batch the default loss cannot use,
            a probe batch larger than the data); fp16 without CUDA or CPU support.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: torch.nn.Module | None = None,
        train_data: Iterable[Any] | None = None,
        test_data: Iterable[Any] | None = None,
        loss_fn: ModelLoss | BatchLoss | None = None,
        metrics_fn: Metrics | None = None,
        probe_data: Any = None,
        run_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        data: DatasetSplits | None = None,
    ) -> None:
        if model is not None:
            config = config.replace(model=None, model_options={})
        if train_data is not None:
            config = config.replace(dataset=None, dataset_options={})
        self.config = config
        self.loss_fn = CROSS_ENTROPY if loss_fn is None else model_loss(loss_fn)
        self.metrics_fn = metrics_fn
        self.device = training_device(config.device)
        self.distributed = distributed_context(self.device)  # None for a single process
        self.inputs = training_data(
            config, self.device, splits=data, train_data=train_data, test_data=test_data, probe_data=probe_data
        )
        if self.distributed is not None:
            self.inputs = shard_training_data(self.inputs, self.distributed)
        self.model = self._model(model).to(self.device)
        steps_per_epoch = self.inputs.batches.steps_per_epoch
        self.total_steps = config.steps or config.epochs * steps_per_epoch
        self.optimizer = build_optimizer(config, self.model, steps_per_epoch)
        self.autocast, self.optimizer.grad_scaler = mixed_precision(config.amp, self.device)
        replicas = None if self.distributed is None else Replicas(self.model, self.distributed, config, self.optimizer)
        self.passes = StepPasses(
            self.model, self.loss_fn, self.autocast, micro_batches=config.micro_batches, m=config.m, replicas=replicas
        )
        self.probe = (
            CurvatureProbe(
                self.model,
                self.loss_fn,
                self.inputs.probe_batch,
                top_k=config.probe_top_k,
                trace=config.probe_trace,
                trace_samples=config.trace_samples,
                seed=config.seed,
                process_group=None if self.distributed is None else self.distributed.group,
            )
            if config.probe_every is not None
            else None
        )
        self.scale_probe, self.mechanism_probe = self._companion_probes()
        self.history = History()
        self.control = RunControl()
        self.callbacks = list(callbacks)
        self.folder = RunFolder(run_dir) if run_dir is not None and self.is_main else None  # rank 0 writes
        if config.tensorboard:
            if run_dir is None:
                raise ValueError("tensorboard=True writes into the run folder: give the Trainer a run_dir")
            if self.folder is not None:
                self.callbacks.append(TensorBoardSink(self.folder.tensorboard, config, FINAL_METRICS))
        self._rho = optimizer_entry(config.optimizer).defaults().get("rho") if config.rho is None else config.rho
        self.step = 0
        self.status = "ready"
        self.reason = ""
        self.seconds = 0.0
        self._initial_loss: float | None = None

    def _companion_probes(self) -> tuple[ScaleProbe | None, MechanismProbe | None]:
        """The probes that run beside the curvature probe: scale (always with probes) and the opt-in mechanism."""
        if self.probe is None:
            return None, None
        config, batch = self.config, self.inputs.probe_batch
        scale = ScaleProbe(
            self.model,
            self.loss_fn,
            batch,
            adaptive_rho=config.probe_adaptive_rho,
            adaptive_steps=config.probe_adaptive_steps,
            seed=config.seed,
        )
        mechanism = MechanismProbe(self.model, self.loss_fn, batch, self.optimizer) if config.probe_mechanism else None
        return scale, mechanism

    @property
    def world_size(self) -> int:
        """The number of processes training this run (1 without torch.distributed)."""
        return 1 if self.distributed is None else self.distributed.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder, evaluates and reports (rank 0, or the only process)."""
        return self.distributed is None or self.distributed.is_main

    @property
    def data(self) -> DatasetSplits | None:
        """The named dataset the run trains on (None for a user's own data)."""
        return self.inputs.splits

    def _model(self, model: torch.nn.Module | None) -> torch.nn.Module:
        if model is None:
            splits = self.inputs.splits
            if splits is None or self.config.model is None:
                raise ValueError("model is None: pass model= (your own module) or name a model and a dataset")
            return build_model(
                self.config.model,
                input_shape=splits.input_shape,
                num_classes=splits.num_classes,
                seed=self.config.seed,
                **self.config.model_options,
            )
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not any(param.requires_grad for param in model.parameters()):
            raise ValueError("model has no trainable parameters (none requires grad): there is nothing to train")
        return model

    # -- control from any thread -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold after the current step (the history stays readable)."""
        self.control.pause()

    def resume(self) -> None:
        """Continue a paused run."""
        self.control.resume()

    def stop(self) -> None:
        """End after the current step; everything computed so far is kept (and written to the run directory)."""
        self.control.stop()

    @property
    def epoch(self) -> float:
        """Fractional epoch of the current step."""
        return self.step / self.inputs.batches.steps_per_epoch

    # -- the loop ------------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until ``total_steps``, a stop request or a divergence; returns how the run ended.

        Raises:
            ValueError: when another process holds the run folder (see ``RunFolder.lock``).
        """
        if self.folder is None:
            return self._run()
        with self.folder.lock():
            if self.step == 0 and len(self.history) == 0:
                self.folder.remove_run_files(keep=(TENSORBOARD_DIR,))  # a previous run's files; the sink's are open
            else:
                self.folder.remove_outcome()
            self.folder.write_config(self.config)
            return self._run()

    def _run(self) -> TrainResult:
        self.status = "running"
        self._emit("start", {})
        if self.step == 0 and len(self.history) == 0:
            self._check_first_batch()
            self._evaluate()
        while self.step < self.total_steps:
            self._emit("boundary", {})
            if self.control.paused:
                self.status = "paused"
                self._flush()
                self._emit("pause", {})
                self.control.wait_while_paused()
                self.status = "running"
                self._emit("resume", {})
            if self.control.should_stop:
                self.status, self.reason = "stopped", f"stopped by request at step {self.step}"
                break
            started = time.perf_counter()
            with replica_failures(self.distributed, self.step):
                self._train_step()
            self.seconds += time.perf_counter() - started
            if self.status == "diverged":
                break
            if self._evaluation_due():
                self._evaluate()
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self._flush(checkpoint=True)
        if self.status == "running":
            self.status, self.reason = "finished", f"completed {self.total_steps} steps"
        if self.status == "finished" and not self._evaluation_due():
            self._evaluate()  # finished runs always end with an evaluation of the final weights
        self._flush(checkpoint=True)
        result = TrainResult(self.status, self.reason, self.step, self.seconds, self.final_metrics(), self.final_step)
        if self.folder is not None:
            self.folder.write_summary(self.summary())
        self._emit("end", result.final)
        return result

    def summary(self, status: str | None = None) -> dict[str, Any]:
        """What summary.json holds: status (this trainer's, unless given), reason, steps, seconds, the final
        metrics with ``final_step``, the step they were taken at (see ``final_metrics``), and the config."""
        return {
            "status": self.status if status is None else status,
            "reason": self.reason,
            "steps": self.step,
            "seconds": self.seconds,
            "final_step": self.final_step,
            "world_size": self.world_size,
            "final": self.final_metrics(),
            "config": self.config.to_dict(),
        }

    def final_metrics(self) -> dict[str, float]:
        """The headline metrics as of the last evaluation (``final_step``): each one's last value logged at or
        before that step, NaN for those never logged. A finished run ends with an evaluation of its final
        weights; a stopped or diverged one keeps the metrics of its last evaluation, not the losses logged after
        it (``workbench.train.history.final_values``)."""
        return final_values(self.history.to_frame(), FINAL_METRICS)[1]

    @property
    def final_step(self) -> int | None:
        """The step of the last evaluation, which the final metrics describe (None before the first)."""
        return final_values(self.history.to_frame(), ())[0]

    def probe_due(self, step: int) -> bool:
        """Whether the curvature probes run at ``step`` (before that step's update, on the same weights)."""
        return self.probe is not None and step % self.config.probe_every == 0

    def _train_step(self) -> None:
        config, step, epoch = self.config, self.step, self.epoch
        factor = lr_factor(config.schedule, step, self.total_steps, config.lr_milestones, config.lr_gamma)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * factor
            if config.rho_schedule == "lr":
                group["rho"] = self._rho * factor
        batch = move_to(self.inputs.batches.batch(step), self.device)
        probing = self.probe_due(step)
        if probing:
            probe_values = self.probe.measure(step)
            probe_values.update(self.scale_probe.measure(step))
            if self.mechanism_probe is not None:  # opt-in: ∇λ1 before the step (the rest after it, below)
                probe_values.update(self.mechanism_probe.before_step(self.probe.eigenvectors))
            self.history.log(step, epoch, probe_values)
            self._emit("probe", probe_values)
        loss = self._optimizer_step(batch)
        record = self.optimizer.last_step
        values = {"train_loss": loss, "lr": config.lr * factor}
        values.update({f"opt_{name}": value for name, value in record.scalars().items() if name != "step"})
        if probing:
            values.update(self.probe.alignment(record.gradient, record.perturbation))
            if self.mechanism_probe is not None:
                values.update(self.mechanism_probe.after_step(batch, record))
        values.update(self.passes.collectives)
        self.history.log(step, epoch, values)
        self.step += 1
        if self._initial_loss is None:
            self._initial_loss = loss
        if not math.isfinite(loss):
            self.status, self.reason = "diverged", f"loss became {loss} at step {step}"
        elif loss > config.divergence_factor * max(self._initial_loss, 1e-12):
            self.status = "diverged"
            self.reason = (
                f"loss {loss:.4g} at step {step} exceeded divergence_factor × initial loss "
                f"({config.divergence_factor:g} × {self._initial_loss:.4g})"
            )
        self._emit("step", values)

    def _optimizer_step(self, batch: Any) -> float:
        """One optimizer step on ``batch`` through ``StepPasses``: micro-batches, m chunks with their own ε, the
        run's mixed precision, and on several processes DDP with ``perturbation_sync`` (its all-reduce counts land
        in ``passes.collectives``, logged as ``comm_*``)."""
        return self.passes.run(self.optimizer, batch)

    def _check_first_batch(self) -> None:
        """Before anything else, the loss on the first training batch: a clear error for a loss that is not a
        finite scalar depending on the parameters (rather than a failure deep in a probe or the optimizer)."""
        batch = move_to(self.inputs.batches.batch(0), self.device)
        with eval_mode(self.model), torch.enable_grad():  # eval mode: no BatchNorm statistics move
            check_first_loss(self.loss_fn(self.model, batch))

    def _evaluation_due(self) -> bool:
        every = self.config.eval_every or self.inputs.batches.steps_per_epoch
        return self.step % every == 0

    def _evaluate(self) -> None:
        if not self.is_main:  # rank 0 evaluates and writes; the others go on to the next step's collectives
            return
        values: dict[str, float] = {}
        if self.inputs.test_batches is not None:
            test = evaluate(self.model, self.loss_fn, self.inputs.test_batches(), self.metrics_fn)
            values.update({f"test_{name}": value for name, value in test.items()})
        train = evaluate(self.model, self.loss_fn, chunks(self.inputs.eval_train, EVAL_BATCH), self.metrics_fn)
        values.update({("train_eval_loss" if name == "loss" else f"train_{name}"): v for name, v in train.items()})
        values["seconds"] = self.seconds
        self.history.log(self.step, self.epoch, values)
        self._flush()
        self._emit("eval", values)

    def _emit(self, kind: str, values: dict[str, float]) -> None:
        event = TrainEvent(kind, self.step, self.epoch, dict(values))
        for callback in self.callbacks:
            callback(event)

    # -- persistence ----------------------------------------------------------------------------------------------

    def _flush(self, checkpoint: bool = False) -> None:
        if self.folder is None:
            return
        self.folder.write_history(self.history)
        if checkpoint:
            self.save_checkpoint(self.folder.checkpoint)

    def save_to(self, folder: RunFolder, status: str | None = None) -> RunFolder:
        """Write the run as it is now into ``folder``: config, history, checkpoint and summary (``status``
        overriding this trainer's), under the folder's lock; the files of another run there are removed first.
        Call it only while the trainer does not step."""
        own = self.folder is not None and self.folder.path.resolve() == folder.path.resolve()
        with folder.lock():
            if own:
                folder.remove_outcome()
            else:
                folder.remove_run_files()
            folder.write_config(self.config)
            folder.write_history(self.history)
            self.save_checkpoint(folder.checkpoint)
            folder.write_summary(self.summary(status))
        return folder

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as plain values (tensors, numbers, strings, lists, dicts):
        weights, optimizer (with its eigen-tracker), probe warm start, history, step, timers, every random-number
        generator, and what wrote it (``checkpoint.writer_record``)."""
        return {
            "writer": writer_record(self.optimizer),
            "config": self.config.to_dict(),
            "world_size": self.world_size,
            "step": self.step,
            "seconds": self.seconds,
            "initial_loss": self._initial_loss,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": None if self.optimizer.grad_scaler is None else self.optimizer.grad_scaler.state_dict(),
            "probe_eigenvectors": None if self.probe is None else self.probe.eigenvectors,
            "history": self.history.rows_since(0),
            "rng": rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` taken from a trainer with the same config, optimizer class and world size.

        Raises:
            ValueError: naming the config keys that differ, or the optimizer class or world size.
        """
        if state["config"] != self.config.to_dict():
            ours = self.config.to_dict()
            keys = sorted(key for key in {*ours, *state["config"]} if ours.get(key) != state["config"].get(key))
            raise ValueError(
                f"the checkpoint was taken with a different config ({', '.join(keys)} differ); build the Trainer "
                "from its config"
            )
        check_writer(state.get("writer"), self.optimizer)
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self._initial_loss = state["initial_loss"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.optimizer.grad_scaler is not None and state.get("grad_scaler"):
            self.optimizer.grad_scaler.load_state_dict(state["grad_scaler"])
        if self.probe is not None:
            vectors = state["probe_eigenvectors"]
            self.probe.eigenvectors = None if vectors is None else vectors.to(self.device)
        self.history = History(state["history"])
        restore_rng_states(state["rng"])

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write ``state_dict()`` to ``path`` atomically, with its checksum (``checkpoint.write_checkpoint``)."""
        return write_checkpoint(path, self.state_dict())

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        *,
        run_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        data: DatasetSplits | None = None,
        **own: Any,
    ) -> Trainer:
        """A trainer continuing from ``checkpoint`` (a file written by ``save_checkpoint``) with its config. A run
        of your own model and data needs them again (``model=``, ``train_data=``, ``test_data=``, ``loss_fn=``,
        ``metrics_fn=``, ``probe_data=`` as for ``Trainer``); the weights and everything else come from the
        checkpoint.

        Raises:
            ValueError: naming the file when it is missing, damaged, not a workbench checkpoint, or written with
                another optimizer class or world size.
        """
        state = read_checkpoint(checkpoint)
        try:
            config = TrainConfig.from_dict(state["config"])
            trainer = cls(config, run_dir=run_dir, callbacks=callbacks, data=data, **own)
            trainer.load_state_dict(state)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"checkpoint {checkpoint} does not hold a Trainer state ({type(error).__name__}: {error})"
            ) from None
        except ValueError as error:
            raise ValueError(f"checkpoint {checkpoint}: {error}") from None
        return trainer
