"""LiveRun: one training run on a worker thread, driven from the notebook's thread. No widgets here.

The worker thread owns the model: it runs ``Trainer.run()`` and everything the Trainer's callbacks do (a
live chart redraws from there). The notebook's thread only sets flags (``pause``, ``resume``, ``stop``) or asks
for work to be done between two steps (``between_steps``: a model snapshot, a save), so the kernel stays free
and buttons respond while training runs. Whatever happens, the history computed so far stays in
``history`` (and in the run directory, when there is one).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from workbench.datasets import DatasetSplits
from workbench.live.custom import CustomSetup
from workbench.live.snapshot import ModelSnapshot, open_checkpoint, snapshot_of_trainer
from workbench.live.trajectory import Trajectory, TrajectoryRecorder
from workbench.optim import optimizer_entry
from workbench.train import History, TrainConfig, Trainer, TrainEvent, TrainResult
from workbench.train.run_folder import RunFolder

T = TypeVar("T")
Callback = Callable[[TrainEvent], None]

#: Memory the recorded trajectory may take by default (bytes): 512 snapshots of the 32 k-parameter MNIST-1D CNN.
DEFAULT_TRAJECTORY_BYTES = 64 * 2**20
#: Trainer events at which weights, history and step counter agree: requests (snapshots, saves) are served there.
_CONSISTENT_EVENTS = ("boundary", "pause", "end")
#: Seconds of recent steps the steps/s figure averages over.
RATE_WINDOW = 2.0


def run_label(config: TrainConfig) -> str:
    """A short name for a run: optimizer, its ρ/α (paper defaults where the config says None), lr and seed."""
    entry = optimizer_entry(config.optimizer)
    parts = [entry.title]
    defaults = entry.defaults()
    for option, symbol in (("rho", "ρ"), ("alpha", "α")):
        if option in defaults:
            value = getattr(config, option)
            parts.append(f"{symbol}={defaults[option] if value is None else value:g}")
    parts += [f"lr={config.lr:g}", f"seed {config.seed}"]
    return " ".join(parts)


class _Request:
    """A function to run once between two training steps, and its outcome."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._claimed = threading.Lock()

    def serve(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return
        try:
            self.result = self.function()
        except Exception as error:
            self.error = error
        finally:
            self.done.set()


class LiveRun:
    """One run of ``Trainer`` on a background thread, with start / pause / resume / stop / reset.

    Args:
        source: a ``TrainConfig`` (a fresh run) or a ``Trainer`` that has not started (e.g. from a checkpoint).
        data: the loaded dataset of the config (saves reloading it for every run).
        setup: your own model, data and loss (``CustomSetup``) instead of the config's named ones; every run,
            resets included, starts from the model's initial weights.
        run_dir: directory the Trainer writes to as it goes (config, history, checkpoint, summary), plus the
            trajectory; None keeps everything in memory until ``save``.
        label: the run's name on charts (default: ``run_label(config)``).
        callbacks: called with every ``TrainEvent`` from the training thread (plus ``"error"`` if it fails).
        trajectory_every: steps between weight snapshots for trajectory PCA (default: the probe interval, else
            one epoch).
        trajectory_bytes: memory the snapshots may take; beyond it every other one is dropped.

    Raises:
        ValueError: for a Trainer that already ran, or a bad trajectory option.
    """

    def __init__(
        self,
        source: TrainConfig | Trainer,
        *,
        data: DatasetSplits | None = None,
        setup: CustomSetup | None = None,
        run_dir: str | Path | None = None,
        label: str | None = None,
        callbacks: Iterable[Callback] = (),
        trajectory_every: int | None = None,
        trajectory_bytes: int = DEFAULT_TRAJECTORY_BYTES,
        trajectory: Trajectory | None = None,
    ) -> None:
        self.callbacks = list(callbacks)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._trajectory_every = trajectory_every
        self._trajectory_bytes = trajectory_bytes
        self._label = label
        self.setup = setup
        self._lock = threading.RLock()
        if isinstance(source, Trainer):
            if source.status != "ready":
                raise ValueError(f"the Trainer must not have run yet (status 'ready'), got status {source.status!r}")
            trainer = source
        else:
            trainer = self._trainer(source, data)
        self._adopt(trainer, trajectory)

    # -- construction ----------------------------------------------------------------------------------------------

    def _adopt(self, trainer: Trainer, trajectory: Trajectory | None) -> None:
        trainer.callbacks[:0] = [self._on_event, *self.callbacks]
        self.trainer = trainer
        self.label = self._label or run_label(trainer.config)
        every = self._trajectory_every or trainer.config.probe_every or trainer.inputs.batches.steps_per_epoch
        num_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        limit = max(3, int(self._trajectory_bytes) // (4 * num_params))
        self.recorder = TrajectoryRecorder.resumed(trajectory, every, limit)
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._requests: deque[_Request] = deque()
        self._recent: deque[tuple[float, int]] = deque()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        data: DatasetSplits | None = None,
        setup: CustomSetup | None = None,
        callbacks: Iterable[Callback] = (),
        label: str | None = None,
    ) -> LiveRun:
        """Reopen a saved run (a run directory with checkpoint.pt, or the checkpoint file) to inspect or continue it;
        a run of your own model and data needs its ``setup`` again.

        Raises:
            ValueError: when ``path`` holds no checkpoint.
        """
        own = {} if setup is None else setup.trainer_arguments()
        trainer, trajectory = open_checkpoint(path, data=data, **own)
        name = (Path(path) if Path(path).is_dir() else Path(path).parent).name
        return cls(trainer, setup=setup, callbacks=callbacks, label=label or name, trajectory=trajectory)

    # -- state ------------------------------------------------------------------------------------------------------

    @property
    def config(self) -> TrainConfig:
        """The run's configuration."""
        return self.trainer.config

    @property
    def history(self) -> History:
        """The run's tidy history (safe to read at any time)."""
        return self.trainer.history

    @property
    def status(self) -> str:
        """One of ready, running, paused, stopped, finished, diverged, or failed (an exception: see ``error``)."""
        return "failed" if self.error is not None else self.trainer.status

    @property
    def running(self) -> bool:
        """Whether the run is under way: started, not ended (it may be paused)."""
        return self._worker is not None and self._worker.is_alive() and not self.ended

    @property
    def pause_requested(self) -> bool:
        """Whether a pause was asked for and not yet resumed (it takes effect after the current step)."""
        return self.trainer.control.paused

    @property
    def ended(self) -> bool:
        """Whether the run has ended (finished, stopped, diverged or failed)."""
        return self.status in ("stopped", "finished", "diverged", "failed")

    @property
    def steps_per_second(self) -> float:
        """Training speed over the last ``RATE_WINDOW`` seconds of running (NaN until two steps are seen)."""
        recent = list(self._recent)
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return float("nan")
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    @property
    def trajectory(self) -> Trajectory | None:
        """The weights recorded along the run so far."""
        return self.recorder.trajectory()

    # -- control (from any thread) -------------------------------------------------------------------------------

    def start(self) -> LiveRun:
        """Start (or continue a reopened run) on a daemon thread; returns at once.

        Raises:
            ValueError: if the run was already started (``reset`` it first).
        """
        with self._lock:
            if self._worker is not None:
                raise ValueError(f"run {self.label!r} was already started (status {self.status!r}); reset it first")
            self._worker = threading.Thread(target=self._work, name=f"LiveRun {self.label}", daemon=True)
            self._worker.start()
        return self

    def pause(self) -> None:
        """Hold after the current step."""
        self.trainer.pause()

    def resume(self) -> None:
        """Continue a paused run (waits for a snapshot or save that is being taken while paused)."""
        with self._lock:
            self.trainer.resume()

    def stop(self) -> None:
        """End after the current step; the history so far is kept (and written to the run directory)."""
        with self._lock:
            self.trainer.stop()

    def join(self, timeout: float | None = None) -> TrainResult | None:
        """Wait for the run to end (at most ``timeout`` seconds); returns its result (None if still running).

        Raises:
            RuntimeError: if training failed with an exception (chained to it).
        """
        if self._worker is not None:
            self._worker.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"run {self.label!r} failed: {self.error}") from self.error
        return self.result

    def reset(self, config: TrainConfig | None = None, *, label: str | None = None) -> LiveRun:
        """Stop and wait for the current run, then prepare a fresh one (new weights) of ``config`` (default: the
        same config) named ``label`` (default: ``run_label(config)``); the callbacks and run directory stay.

        The old run's history is not kept here: read ``history`` first (the dashboard overlays it)."""
        self.stop()
        if self._worker is not None:
            self._worker.join()
        config = self.config if config is None else config
        old = self.trainer
        same_data = (config.dataset, config.dataset_options, config.seed) == (
            old.config.dataset,
            old.config.dataset_options,
            old.config.seed,
        )
        self._label = label
        self._adopt(self._trainer(config, old.data if same_data else None), None)
        return self

    def _trainer(self, config: TrainConfig, data: DatasetSplits | None) -> Trainer:
        own = {} if self.setup is None else self.setup.trainer_arguments()
        return Trainer(config, run_dir=self.run_dir, data=data, **own)

    # -- work between steps ---------------------------------------------------------------------------------------

    def between_steps(self, function: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``function()`` while the model is not being stepped, and return its result.

        While training runs, the training thread calls it before the next step (at the Trainer's "boundary"
        event, where a saved checkpoint resumes exactly); while paused, not started or ended, it runs here at once.

        Raises:
            TimeoutError: if the training thread did not reach a step boundary within ``timeout`` seconds.
            Exception: whatever ``function`` raised.
        """
        request = _Request(function)
        with self._lock:
            idle = not self.running or self.trainer.status == "paused"
            if idle:
                request.serve()
            else:
                self._requests.append(request)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not request.done.wait(0.05):
            if not self.running:  # the run ended before reaching the request: the model is free now
                request.serve()
            elif deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.label!r} did not reach a step boundary within {timeout} s")
        if request.error is not None:
            raise request.error
        return request.result

    def snapshot(self) -> ModelSnapshot:
        """A copy of the model at a step boundary, with the probe batch and the trajectory so far."""

        def take() -> ModelSnapshot:
            label = f"{self.label}, step {self.trainer.step}"
            return snapshot_of_trainer(self.trainer, label=label, trajectory=self.recorder.trajectory())

        return self.between_steps(take)

    def save(self, run_dir: str | Path) -> Path:
        """Write the run as it is now (between two steps) to the run folder ``run_dir``: config, history,
        checkpoint, summary and trajectory. ``LiveRun.open(run_dir)`` reopens it and continues exactly."""
        folder = RunFolder(run_dir)

        def write() -> Path:
            self.trainer.save_to(folder, status=self.status)
            self._save_trajectory(folder)
            return folder.path

        return self.between_steps(write)

    # -- the training thread --------------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self.result = self.trainer.run()
        except Exception as error:
            self.error = error
            self._serve_requests()
            event = TrainEvent("error", self.trainer.step, self.trainer.epoch, {})
            for callback in self.callbacks:
                callback(event)

    def _on_event(self, event: TrainEvent) -> None:
        now = time.perf_counter()
        if event.kind in ("start", "resume"):
            self._recent.clear()
        if event.kind in ("start", "step", "resume"):
            self._recent.append((now, event.step))
            while self._recent and now - self._recent[0][0] > RATE_WINDOW and len(self._recent) > 2:
                self._recent.popleft()
        if event.kind in ("start", "step", "end"):  # the first weights and the last are kept off the schedule too
            force = event.kind == "end" or len(self.recorder) == 0
            self.recorder.record(event.step, self.trainer.model, force=force)
        if event.kind in ("pause", "end") and self.trainer.folder is not None:
            self._save_trajectory(self.trainer.folder)
        if event.kind in _CONSISTENT_EVENTS:
            self._serve_requests()

    def _serve_requests(self) -> None:
        while self._requests:
            self._requests.popleft().serve()

    def _save_trajectory(self, folder: RunFolder) -> None:
        trajectory = self.recorder.trajectory()
        if trajectory is not None:
            trajectory.save(folder.trajectory)
