"""What the Trainer logs through the one optimizer interface, ρ schedules, and the optional TensorBoard sink."""

from __future__ import annotations

import math

import pytest
import torch

from tests.ui_helpers import moons_config, moons_data
from workbench.train import Trainer
from workbench.train.schedule import lr_factor


def test_every_optimizer_is_read_through_its_step_record():
    data = moons_data()
    sgd = Trainer(moons_config(optimizer="sgd", steps=3, probe_every=2), data=data)
    sgd.run()
    logged = set(sgd.history.to_frame().metric)
    assert "opt_gradient_norm" in logged and "angle_g_v1" in logged
    assert not logged & {"opt_perturbation_norm", "opt_eigenvalue", "alignment_eps_v1"}  # no ε, no tracker
    xsam = Trainer(moons_config(optimizer="xsam", steps=3, probe_every=2, freq=1), data=data)
    xsam.run()
    logged = set(xsam.history.to_frame().metric)
    assert {"opt_perturbation_norm", "opt_eigenvalue", "opt_refreshed", "opt_angle_descent_eigenvector"} <= logged


def test_rho_follows_the_learning_rate_with_the_lr_schedule():
    config = moons_config(optimizer="sam", rho=0.2, rho_schedule="lr", schedule="cosine", steps=6, probe_every=None)
    trainer = Trainer(config, data=moons_data())
    trainer.run()
    history = trainer.history.to_frame()
    norms = history[history.metric == "opt_perturbation_norm"].value.to_numpy()
    expected = [0.2 * lr_factor("cosine", step, 6, (), 1.0) for step in range(6)]
    assert norms == pytest.approx(expected, rel=1e-5)
    assert trainer.optimizer.param_groups[0]["rho"] == pytest.approx(expected[-1])


def test_a_custom_loss_is_what_the_trainer_trains_probes_and_evaluates():
    def smoothed(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        return torch.nn.functional.cross_entropy(model(inputs), targets, label_smoothing=0.3)

    data = moons_data()
    plain = Trainer(moons_config(steps=2, probe_every=1), data=data)
    custom = Trainer(moons_config(steps=2, probe_every=1), data=data, loss_fn=smoothed)
    plain.run()
    custom.run()
    for metric in ("train_loss", "test_loss", "lambda_1"):
        assert custom.history.last(metric) != pytest.approx(plain.history.last(metric), rel=1e-3), metric
    assert "test_accuracy" not in set(custom.history.to_frame().metric)  # a custom loss reports no accuracy
    inputs, targets = data.test.tensors
    with torch.no_grad():
        custom.model.eval()
        expected = float(smoothed(custom.model, (inputs, targets)))
    assert custom.history.last("test_loss") == pytest.approx(expected, rel=1e-5)


def test_tensorboard_sink_writes_the_same_scalars_and_the_hyperparameters(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = moons_config(optimizer="eigensam", freq=2, steps=6, probe_every=3, tensorboard=True)
    trainer = Trainer(config, data=moons_data(), run_dir=tmp_path / "run")
    trainer.run()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    history = trainer.history.to_frame()
    for metric in ("train_loss", "test_accuracy", "lambda_1", "trace", "angle_g_v1", "opt_perturbation_norm"):
        logged = history[history.metric == metric]
        scalars = events.Scalars(metric)
        assert [event.step for event in scalars] == logged.step.tolist(), metric
        assert [event.value for event in scalars] == pytest.approx(logged.value.tolist(), rel=1e-6), metric
    final = events.Scalars("final/test_accuracy")
    assert final[-1].value == pytest.approx(trainer.final_metrics()["test_accuracy"])
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    start = plugins["_hparams_/session_start_info"]
    assert b"eigensam" in start and b"rho_schedule" in start
    assert not math.isnan(final[-1].value)


def test_tensorboard_needs_a_run_folder():
    with pytest.raises(ValueError, match="tensorboard=True writes into the run folder: give the Trainer a run_dir"):
        Trainer(moons_config(tensorboard=True), data=moons_data())
