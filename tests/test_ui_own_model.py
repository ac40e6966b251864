"""The live layer and the dashboard on a user's own model, DataLoader and loss; then its spectrum and landscape."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from tests.test_train_own_model import DictSet, dict_loss, model
from workbench.live import landscape_directions, measure_spectrum
from workbench.live.measure import landscape_line
from workbench.ui import training_dashboard


@pytest.fixture
def dashboard():
    train = DataLoader(DictSet(96), batch_size=16, shuffle=True)
    test = DataLoader(DictSet(40, seed=1), batch_size=20)
    settings = {"optimizer": "sam", "lr": 0.1, "steps": 6, "probe_every": 3, "probe_batch_size": 32,
                "trace_samples": 6, "device": "cpu"}  # fmt: skip
    return training_dashboard(model=model(), train_data=train, test_data=test, loss_fn=dict_loss, **settings)


def test_runs_of_your_own_model_start_from_its_weights_and_feed_the_explorers(dashboard):
    assert all(dashboard.controls[name].layout.display == "none" for name in ("dataset", "model"))
    first = dashboard.start()
    dashboard.join(60)
    assert first.status == "finished" and first.config.dataset is None and first.config.model is None
    second = dashboard.start(optimizer="xsam", freq=2)
    dashboard.join(60)
    assert second is not first and second.status == "finished"
    losses = [run.history.series("train_loss").value.iloc[0] for run in (first, second)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # both from the same initial weights
    assert set(dashboard.runs()) == {first.label, second.label}
    snapshot = dashboard.snapshot()
    spectrum = measure_spectrum(snapshot, top_k=2, slq_runs=2, lanczos_steps=10, trace_samples=12)
    assert spectrum.eigen.eigenvalues[0] >= spectrum.eigen.eigenvalues[1]
    directions = landscape_directions(snapshot, "random", count=1)
    line = landscape_line(snapshot, directions, [-0.5, 0.0, 0.5])
    with torch.no_grad():
        expected = float(dict_loss(snapshot.model.eval(), snapshot.batch))
    assert line.loss[1] == pytest.approx(expected, rel=1e-5)


def test_save_and_open_continue_your_own_run(dashboard, tmp_path):
    dashboard.start()
    dashboard.join(60)
    dashboard.save(tmp_path / "mine")
    dashboard.open(tmp_path / "mine")
    assert dashboard.run.trainer.step == 6 and dashboard.run.config.model is None


def test_a_model_name_is_still_a_setting():
    named = training_dashboard(model="mlp", dataset="moons", steps=2)
    assert named.config().model == "mlp" and named.setup is None
