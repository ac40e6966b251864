"""The Trainer end to end on small problems: learning, probe schedule, control, divergence, exact resume."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from workbench.datasets import load_dataset
from workbench.train import TrainConfig, Trainer

MOONS = {"num_samples": 400}


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", seed=0, **MOONS)


def config(**changes) -> TrainConfig:
    base = TrainConfig(
        dataset="moons",
        dataset_options=MOONS,
        model="mlp",
        model_options={"hidden_sizes": [32, 32], "norm": "batch"},
        lr=0.1,
        batch_size=32,
        steps=40,
        probe_every=10,
        probe_batch_size=64,
        trace_samples=9,
        eval_every=10,
        schedule="constant",
    )
    return base.replace(**changes)


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "asam", "eigensam", "xsam"])
def test_each_optimizer_lowers_the_loss_and_probes_on_schedule(moons, optimizer):
    changes = {"freq": 5} if optimizer in ("eigensam", "xsam") else {}
    trainer = Trainer(config(optimizer=optimizer, **changes), data=moons)
    result = trainer.run()
    frame = trainer.history.to_frame()
    losses = frame[frame.metric == "train_eval_loss"].sort_values("step").value.tolist()
    assert result.status == "finished" and result.steps == 40
    assert losses[-1] < 0.8 * losses[0], losses
    probe_steps = sorted(frame[frame.metric == "lambda_1"].step.tolist())
    assert probe_steps == [0, 10, 20, 30]
    assert sorted(frame[frame.metric == "angle_g_v1"].step.tolist()) == probe_steps
    assert frame[frame.metric == "lambda_1"].value.gt(0).all()
    if optimizer != "sgd":
        alignment = frame[frame.metric == "alignment_eps_v1"].value
        assert len(alignment) == 4 and alignment.between(0, 1).all()
        assert (frame.metric == "opt_perturbation_norm").sum() == 40
    if optimizer in ("eigensam", "xsam"):
        refreshed = frame[(frame.metric == "opt_refreshed") & (frame.value == 1)].step.tolist()
        assert refreshed, "the eigen-tracker never refreshed"


def test_pause_and_stop_from_another_thread_keep_the_history(moons, tmp_path):
    reached = threading.Event()
    trainer = Trainer(config(steps=100_000, probe_every=None), run_dir=tmp_path / "run", data=moons)

    def on_event(event) -> None:
        if event.kind == "step" and event.step >= 5:
            reached.set()

    trainer.callbacks.append(on_event)
    worker = threading.Thread(target=trainer.run)
    worker.start()
    assert reached.wait(timeout=60)
    trainer.pause()
    deadline = threading.Event()
    deadline.wait(0.3)
    held = trainer.step
    deadline.wait(0.5)
    assert trainer.step == held and trainer.status == "paused"
    trainer.resume()
    deadline.wait(0.3)
    assert trainer.step > held
    trainer.stop()
    worker.join(timeout=60)
    assert not worker.is_alive() and trainer.status == "stopped"
    on_disk = pd.read_csv(tmp_path / "run" / "history.csv")
    # the last step's rows, plus its evaluation rows (logged at trainer.step) when the stop came during that evaluation
    assert on_disk.step.max() == trainer.history.to_frame().step.max() in (trainer.step - 1, trainer.step)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_divergence_stops_cleanly_and_keeps_the_history(moons, tmp_path):
    trainer = Trainer(config(lr=1e6, momentum=0.0, steps=200, probe_every=None), run_dir=tmp_path, data=moons)
    result = trainer.run()
    assert result.status == "diverged" and result.steps < 200
    assert "loss" in result.reason and str(result.steps - 1) in result.reason
    saved = pd.read_csv(tmp_path / "history.csv")
    assert saved.step.max() == result.steps - 1 and (saved.metric == "train_loss").sum() == result.steps


@pytest.mark.parametrize("optimizer", ["xsam", "eigensam", "sgd"])
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(moons, tmp_path, optimizer):
    settings = config(optimizer=optimizer, freq=3) if optimizer != "sgd" else config()
    settings = settings.replace(model_options={"hidden_sizes": [16], "norm": "batch"}, steps=30, eval_every=7)
    straight = Trainer(settings, data=moons)
    straight.run()

    first = Trainer(settings, run_dir=tmp_path / "first", data=moons)
    first.callbacks.append(lambda event: first.stop() if event.kind == "step" and first.step == 14 else None)
    assert first.run().status == "stopped"
    resumed = Trainer.from_checkpoint(tmp_path / "first" / "checkpoint.pt", data=moons)
    assert resumed.step == 14
    assert resumed.run().status == "finished"

    def deterministic(trainer: Trainer) -> pd.DataFrame:
        frame = trainer.history.to_frame()
        return frame[frame.metric != "seconds"].reset_index(drop=True)

    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(straight))


class TestBadInput:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"dataset": "imagenet"}, "dataset must be one of 'moons'"),
            ({"model": "vit"}, "must be one of 'mlp'"),
            ({"optimizer": "sam", "alpha": 0.3}, "optimizer 'sam' takes no alpha"),
            ({"optimizer": "xsam", "alpha": 3.0}, r"alpha must be in \[0, 2\]"),
            ({"model_options": {"depth": 3}}, "unknown option"),
            ({"amp": True, "device": "cpu"}, "amp must be one of .off., .bf16., .fp16.; got True"),
        ],
    )
    def test_clear_errors(self, moons, changes, message):
        with pytest.raises(ValueError, match=message):
            Trainer(config(**changes), data=None if "dataset" in changes else moons)
