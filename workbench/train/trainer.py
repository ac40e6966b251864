"""The training engine: one loop for live widgets and headless batches, with probes on a schedule.

``Trainer(config).run()`` trains, logging into a tidy ``History`` that other threads may read at any time.
``pause()``, ``resume()`` and ``stop()`` are safe from another thread and take effect between steps. A
non-finite or exploding loss ends the run cleanly (status ``"diverged"``) with its history kept. With a run
directory, the config, the history, a checkpoint and a summary are written there as training goes, so a
stopped or crashed run leaves everything computed so far on disk; ``Trainer.from_checkpoint(path)`` continues
a run exactly (same seed → identical history on CPU). While it runs, the trainer holds the run folder's lock
(``RunFolder.lock``); a fresh run replaces the files of a previous run in its folder, a continued one only the
outcome of its previous attempt. Checkpoints are read with ``weights_only=True`` after their checksum matched
(``workbench.train.checkpoint``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from workbench.datasets import DatasetSplits, load_dataset
from workbench.devices import resolve_device
from workbench.inputs import LossFn
from workbench.models import build_model
from workbench.optim import optimizer_entry
from workbench.train.batches import EpochBatches
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
from workbench.train.evaluate import evaluate
from workbench.train.history import History, final_values
from workbench.train.optimizers import build_optimizer
from workbench.train.probing import CurvatureProbe
from workbench.train.run_folder import TENSORBOARD_DIR, RunFolder
from workbench.train.schedule import lr_factor
from workbench.train.tensorboard_sink import TensorBoardSink

#: The headline metrics of a run: their last values are its final metrics.
FINAL_METRICS = ("train_loss", "test_loss", "test_accuracy", "train_accuracy", "lambda_1", "trace")
EVAL_TRAIN_SAMPLES = 4096  # train-split loss/accuracy are measured on (at most) this many fixed samples


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
    """Train ``config.model`` on ``config.dataset`` with ``config.optimizer``; see the module docstring.

    Every optimizer steps the same way, ``optimizer.step(closure)``, and is read the same way, through its
    ``last_step`` record (``workbench.optim.WrappedOptimizer``): its scalars are logged as ``opt_<name>``.

    Args:
        config: the run's ``TrainConfig``.
        run_dir: the run folder (``workbench.train.run_folder``: config, history, checkpoint, summary), or None.
        callbacks: called with a ``TrainEvent`` after each step, probe and evaluation, from the training
            thread; keep them quick (a live chart should batch its redraws).
        data: an already loaded ``DatasetSplits`` matching ``config.dataset`` (saves reloading in notebooks).
        loss_fn: ``loss_fn(outputs, targets)`` → a scalar tensor, the loss trained on, probed (λ1, trace, angles)
            and evaluated; default mean cross-entropy. Outputs are cast to float32 first (under ``amp``).

    Raises:
        ValueError: for options the chosen dataset, model or optimizer does not take, or AMP without CUDA.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        run_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        data: DatasetSplits | None = None,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        self.config = config
        self.loss_fn = loss_fn
        self.device = resolve_device(config.device)
        if config.amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device (bfloat16 autocast); device resolves to {self.device}")
        self.data = (
            data if data is not None else load_dataset(config.dataset, seed=config.seed, **config.dataset_options)
        )
        self.model = build_model(
            config.model,
            input_shape=self.data.input_shape,
            num_classes=self.data.num_classes,
            seed=config.seed,
            **config.model_options,
        ).to(self.device)
        train_inputs, train_targets = (t.to(self.device) for t in self.data.train.tensors)
        self.test_tensors = tuple(t.to(self.device) for t in self.data.test.tensors)
        self.batches = EpochBatches(train_inputs, train_targets, config.batch_size, config.seed)
        self.total_steps = config.steps or config.epochs * self.batches.steps_per_epoch
        self.optimizer = build_optimizer(config, self.model, self.batches.steps_per_epoch)
        fixed = torch.randperm(train_inputs.shape[0], generator=torch.Generator().manual_seed(config.seed))
        fixed = fixed.to(self.device)
        self.eval_train_tensors = (train_inputs[fixed[:EVAL_TRAIN_SAMPLES]], train_targets[fixed[:EVAL_TRAIN_SAMPLES]])
        probe_index = fixed[: config.probe_batch_size]
        self.probe = (
            CurvatureProbe(
                self.model,
                loss_fn,
                (train_inputs[probe_index], train_targets[probe_index]),
                top_k=config.probe_top_k,
                trace=config.probe_trace,
                trace_samples=config.trace_samples,
                seed=config.seed,
            )
            if config.probe_every is not None
            else None
        )
        self.history = History()
        self.control = RunControl()
        self.callbacks = list(callbacks)
        self.folder = RunFolder(run_dir) if run_dir is not None else None
        if config.tensorboard:
            if self.folder is None:
                raise ValueError("tensorboard=True writes into the run folder: give the Trainer a run_dir")
            self.callbacks.append(TensorBoardSink(self.folder.tensorboard, config, FINAL_METRICS))
        self._rho = optimizer_entry(config.optimizer).defaults().get("rho") if config.rho is None else config.rho
        self.step = 0
        self.status = "ready"
        self.reason = ""
        self.seconds = 0.0
        self._initial_loss: float | None = None

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
        return self.step / self.batches.steps_per_epoch

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
        inputs, targets = self.batches.batch(step)
        if self.data.augment is not None:
            inputs = self.data.augment(inputs, torch.Generator().manual_seed(config.seed * 100_003 + step))
        probing = self.probe_due(step)
        if probing:
            probe_values = self.probe.measure(step)
            self.history.log(step, epoch, probe_values)
            self._emit("probe", probe_values)
        loss = self._optimizer_step(inputs, targets)
        record = self.optimizer.last_step
        values = {"train_loss": loss, "lr": config.lr * factor}
        values.update({f"opt_{name}": value for name, value in record.scalars().items() if name != "step"})
        if probing:
            values.update(self.probe.alignment(record.gradient, record.perturbation))
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

    def _optimizer_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if self.config.amp else nullcontext()

        def closure() -> torch.Tensor:
            with autocast:
                outputs = self.model(inputs)
            loss = self.loss_fn(outputs.float(), targets)
            loss.backward()
            return loss

        self.model.train()
        return float(self.optimizer.step(closure))

    def _evaluation_due(self) -> bool:
        every = self.config.eval_every or self.batches.steps_per_epoch
        return self.step % every == 0

    def _evaluate(self) -> None:
        test = evaluate(self.model, self.loss_fn, *self.test_tensors)
        train = evaluate(self.model, self.loss_fn, *self.eval_train_tensors)
        values = {
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "train_eval_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "seconds": self.seconds,
        }
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
            "step": self.step,
            "seconds": self.seconds,
            "initial_loss": self._initial_loss,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
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
        loss_fn: LossFn = F.cross_entropy,
    ) -> Trainer:
        """A trainer continuing from ``checkpoint`` (a file written by ``save_checkpoint``) with its config; a run
        trained with its own ``loss_fn`` needs it again here.

        Raises:
            ValueError: naming the file when it is missing, damaged, not a workbench checkpoint, or written with
                another optimizer class or world size.
        """
        state = read_checkpoint(checkpoint)
        try:
            config = TrainConfig.from_dict(state["config"])
            trainer = cls(config, run_dir=run_dir, callbacks=callbacks, data=data, loss_fn=loss_fn)
            trainer.load_state_dict(state)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"checkpoint {checkpoint} does not hold a Trainer state ({type(error).__name__}: {error})"
            ) from None
        except ValueError as error:
            raise ValueError(f"checkpoint {checkpoint}: {error}") from None
        return trainer
