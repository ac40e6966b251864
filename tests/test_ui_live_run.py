"""LiveRun: training on a worker thread, control from another, work between steps, save / reopen, trajectory."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tests.ui_helpers import moons_config, moons_data
from workbench.live.live_run import LiveRun, run_label
from workbench.live.trajectory import Trajectory, TrajectoryRecorder
from workbench.train import Trainer


@pytest.fixture(scope="module")
def data():
    return moons_data()


def _run_until(run: LiveRun, step: int) -> threading.Event:
    reached = threading.Event()

    def on_event(event) -> None:
        if event.kind == "step" and event.step >= step:
            reached.set()

    run.trainer.callbacks.append(on_event)
    return reached


def _untimed(frame):
    """The history without its wall-clock column (the only one that differs between identical runs)."""
    return frame[frame.metric != "seconds"].reset_index(drop=True)


def test_pause_holds_stop_ends_and_the_history_is_kept(data):
    run = LiveRun(moons_config(steps=100_000, probe_every=None), data=data)
    reached = _run_until(run, 20)
    run.start()
    assert reached.wait(60)
    run.pause()
    threading.Event().wait(0.3)
    assert run.status == "paused" and run.pause_requested
    held = (run.trainer.step, len(run.history))
    threading.Event().wait(0.3)
    assert (run.trainer.step, len(run.history)) == held
    run.stop()
    result = run.join(60)
    assert result.status == "stopped" and result.steps == held[0]
    losses = run.history.series("train_loss")
    assert losses.step.tolist() == list(range(held[0])), "every step trained is in the history"


def test_between_steps_runs_on_the_training_thread_while_running_and_here_when_idle(data):
    run = LiveRun(moons_config(steps=100_000, probe_every=None), data=data)
    assert run.between_steps(threading.current_thread) is threading.current_thread()
    reached = _run_until(run, 5)
    run.start()
    assert reached.wait(60)
    assert run.between_steps(threading.current_thread).name == f"LiveRun {run.label}"
    run.pause()
    threading.Event().wait(0.3)
    assert run.between_steps(threading.current_thread) is threading.current_thread()
    run.stop()
    run.join(60)


def test_snapshot_is_a_private_copy_with_the_probe_batch_and_the_trajectory(data):
    run = LiveRun(moons_config(steps=30), data=data)
    run.start()
    run.join(60)
    snapshot = run.snapshot()
    assert snapshot.step == 30
    assert all(a is b for a, b in zip(snapshot.batch, run.trainer.probe.batch, strict=True))
    assert snapshot.trajectory.steps.tolist() == [0, 10, 20, 30]
    for copy, original in zip(snapshot.model.parameters(), run.trainer.model.parameters(), strict=True):
        assert torch.equal(copy, original) and copy.data_ptr() != original.data_ptr()
    final = torch.cat([p.detach().flatten() for p in run.trainer.model.parameters()])
    assert torch.equal(snapshot.trajectory.params[-1], final)


def test_saved_mid_run_and_reopened_it_continues_exactly(data, tmp_path):
    config = moons_config(steps=30)
    whole = LiveRun(config, data=data).start()
    whole.join(60)
    interrupted = LiveRun(config, data=data)
    reached = _run_until(interrupted, 12)
    interrupted.start()
    assert reached.wait(60)
    interrupted.pause()
    interrupted.save(tmp_path / "run")
    interrupted.stop()
    interrupted.join(60)
    for name in ("config.json", "history.csv", "checkpoint.pt", "summary.json", "trajectory.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    reopened = LiveRun.open(tmp_path / "run", data=data)
    assert reopened.label == "run" and reopened.status == "ready" and reopened.trainer.step > 0
    reopened.start()
    reopened.join(60)
    assert _untimed(reopened.history.to_frame()).equals(_untimed(whole.history.to_frame()))
    assert reopened.trajectory.steps.tolist() == whole.trajectory.steps.tolist()


def test_a_failing_callback_ends_the_run_as_failed_with_its_history(data):
    events = []

    def fail_at_step_3(event) -> None:
        events.append(event.kind)
        if event.kind == "step" and event.step == 3:
            raise RuntimeError("broken chart")

    run = LiveRun(moons_config(steps=50), data=data, callbacks=[fail_at_step_3])
    run.start()
    with pytest.raises(RuntimeError, match="broken chart"):
        run.join(60)
    assert run.status == "failed" and events[-1] == "error"
    assert len(run.history.series("train_loss")) == 3


def test_reset_prepares_a_fresh_run_reusing_the_dataset(data):
    run = LiveRun(moons_config(steps=10), data=data)
    run.start()
    run.join(60)
    old_weights = [p.detach().clone() for p in run.trainer.model.parameters()]
    run.reset(moons_config(steps=10, optimizer="xsam"))
    assert run.status == "ready" and run.trainer.step == 0 and len(run.history) == 0
    assert run.trainer.data is data and run.label == "X-SAM ρ=0.05 α=0.2 lr=0.1 seed 0"
    assert not all(torch.equal(a, b) for a, b in zip(old_weights, run.trainer.model.parameters(), strict=True))
    with pytest.raises(ValueError, match="already started"):
        run.start().start()
    run.join(60)


def test_a_trainer_that_already_ran_is_refused(data):
    trainer = Trainer(moons_config(steps=2), data=data)
    trainer.run()
    with pytest.raises(ValueError, match="status 'ready'"):
        LiveRun(trainer)


def test_run_labels_name_the_optimizer_and_its_effective_options():
    assert run_label(moons_config(optimizer="sgd")) == "SGD lr=0.1 seed 0"
    assert run_label(moons_config(optimizer="eigensam", alpha=0.5)) == "Eigen-SAM ρ=0.1 α=0.5 lr=0.1 seed 0"


def test_trajectory_recorder_halves_when_full_and_stays_evenly_spaced(tmp_path):
    model = torch.nn.Linear(3, 2)
    recorder = TrajectoryRecorder(every=2, limit=4)
    for step in range(0, 17):
        recorder.record(step, model)
    trajectory = recorder.trajectory()
    assert recorder.every == 8 and trajectory.steps.tolist() == [0, 8, 16]
    assert trajectory.params.shape == (3, 8)
    trajectory.save(tmp_path / "t.pt")
    loaded = Trajectory.load(tmp_path / "t.pt")
    assert np.array_equal(loaded.steps, trajectory.steps) and torch.equal(loaded.params, trajectory.params)
    resumed = TrajectoryRecorder.resumed(loaded, every=2, limit=4)
    assert resumed.every == 8 and len(resumed) == 3
    with pytest.raises(ValueError, match="limit must be an integer >= 3"):
        TrajectoryRecorder(every=1, limit=2)
