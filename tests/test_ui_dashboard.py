"""The training dashboard driven through its buttons: settings, start / pause / stop / reset, comparisons,
save and reopen, and bad input shown on the status line."""

from __future__ import annotations

import threading

import pytest

from tests.ui_helpers import MOONS, moons_config
from workbench.ui import training_dashboard
from workbench.ui.dashboard import TrainingDashboard


def _dashboard(**changes) -> TrainingDashboard:
    return TrainingDashboard(moons_config(**changes), budget=1.0)


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        deadline.wait(0.02)
    raise AssertionError("timed out")


def test_the_widgets_build_the_config_with_paper_defaults_as_none():
    dashboard = _dashboard(optimizer="sgd")
    assert dashboard.config() == moons_config(optimizer="sgd")
    dashboard.controls["optimizer"].value = "eigensam"
    assert [dashboard.controls[name].value for name in ("rho", "alpha", "freq")] == [0.1, 0.2, 100]
    assert dashboard.config().rho is None and dashboard.config().freq is None
    dashboard.controls["alpha"].value = 0.5
    dashboard.controls["probe_every"].value = 0
    config = dashboard.config()
    assert (config.optimizer, config.alpha, config.probe_every) == ("eigensam", 0.5, None)
    dashboard.controls["optimizer"].value = "sam"
    assert dashboard.controls["alpha"].layout.visibility == "hidden" and dashboard.config().alpha is None
    dashboard.set(dataset="digits")
    assert dashboard.config().dataset_options == {}, "options of the base dataset do not carry over"


def test_bad_settings_show_on_the_status_line_and_start_nothing():
    dashboard = _dashboard()
    dashboard.controls["lr"].value = -1.0
    dashboard.buttons["start"].click()
    assert "lr must be in (0, inf)" in dashboard.status.value and dashboard.run is None
    with pytest.raises(ValueError, match="no setting momentum"):
        dashboard.set(momentum=0.5)
    with pytest.raises(ValueError, match="unknown config option"):
        training_dashboard(learning_rate=0.1)


def test_buttons_start_pause_and_stop_a_run_without_losing_its_history():
    dashboard = _dashboard(steps=100_000, probe_every=None)
    dashboard.buttons["start"].click()
    run = dashboard.run
    _wait(lambda: run.trainer.step >= 20)
    assert dashboard.buttons["start"].disabled and not dashboard.buttons["stop"].disabled
    dashboard.buttons["pause"].click()
    _wait(lambda: run.status == "paused")
    assert dashboard.buttons["pause"].description == "Resume" and " paused " in dashboard.status.value
    held = (run.trainer.step, dashboard.charts.point_count(), len(run.history))
    threading.Event().wait(0.3)
    assert (run.trainer.step, dashboard.charts.point_count(), len(run.history)) == held
    assert dashboard.charts.point_count() >= held[0], "the chart shows every step trained before the pause"
    dashboard.buttons["pause"].click()
    _wait(lambda: run.trainer.step > held[0])
    dashboard.buttons["stop"].click()
    dashboard.join(60)
    _wait(lambda: "stopped" in dashboard.status.value)
    assert run.history.series("train_loss").step.tolist() == list(range(run.trainer.step))
    assert not dashboard.buttons["start"].disabled and dashboard.buttons["stop"].disabled


def test_ended_runs_stay_for_comparison_until_cleared():
    dashboard = _dashboard(steps=15)
    dashboard.start()
    dashboard.join(60)
    dashboard.start(optimizer="xsam")
    dashboard.join(60)
    labels = ["SAM ρ=0.05 lr=0.1 seed 0", "X-SAM ρ=0.05 α=0.2 lr=0.1 seed 0"]
    assert list(dashboard.runs()) == labels and dashboard.charts.labels == labels
    assert list(dashboard.summary().run) == labels
    assert {trace.legendgroup for trace in dashboard.figure().data} == set(labels)
    dashboard.start(optimizer="sam")
    dashboard.join(60)
    assert list(dashboard.runs())[-1] == "SAM ρ=0.05 lr=0.1 seed 0 #2"
    dashboard.buttons["clear"].click()
    assert list(dashboard.runs()) == ["SAM ρ=0.05 lr=0.1 seed 0 #2"] == dashboard.charts.labels
    dashboard.keep.value = False
    dashboard.buttons["reset"].click()
    assert dashboard.run is None and dashboard.runs() == {} and dashboard.charts.labels == []


def test_save_then_open_continues_the_run_and_a_history_only_directory_is_overlaid(tmp_path):
    dashboard = _dashboard(steps=30)
    dashboard.start()
    dashboard.join(60)
    dashboard.run_dir.value = str(tmp_path / "saved")
    dashboard.buttons["save"].click()
    assert "saved" in dashboard.status.value and (tmp_path / "saved" / "checkpoint.pt").is_file()

    other = _dashboard(steps=60, optimizer="sgd")
    other.run_dir.value = str(tmp_path / "saved")
    other.buttons["open"].click()
    assert other.run.label == "saved" and other.run.trainer.step == 30
    assert other.controls["optimizer"].value == "sam" and other.controls["steps"].value == 30
    other.start(lr=0.2)  # changed settings: a new run, the reopened one is put aside for comparison
    other.join(60)
    assert other.run.label == "SAM ρ=0.05 lr=0.2 seed 0" and other.run.trainer.step == 30
    assert list(other.compared) == ["saved"]

    (tmp_path / "history_only").mkdir()
    (tmp_path / "saved" / "history.csv").rename(tmp_path / "history_only" / "history.csv")
    other.open(tmp_path / "history_only")
    assert "history_only" in other.compared and "history_only" in other.charts.labels
    other.run_dir.value = str(tmp_path / "nothing")
    other.buttons["open"].click()
    assert "is not a saved run" in other.status.value


def test_a_reopened_run_continues_when_its_settings_are_unchanged(tmp_path):
    dashboard = _dashboard(steps=100_000, probe_every=None)
    dashboard.start()
    _wait(lambda: dashboard.run.trainer.step >= 10)
    dashboard.pause()
    dashboard.save(tmp_path / "run")
    dashboard.stop()
    dashboard.join(60)
    reopened = TrainingDashboard(moons_config(dataset_options=MOONS))
    reopened.open(tmp_path / "run")
    step = reopened.run.trainer.step
    reopened.start()
    _wait(lambda: reopened.run.trainer.step > step + 5)
    assert reopened.run.label == "run", "the reopened run itself goes on"
    reopened.stop()
    reopened.join(60)


def test_the_mechanism_probe_brings_its_opt_in_rows_and_fills_them():
    dashboard = _dashboard(steps=12, probe_every=5, probe_trace=False, probe_mechanism=True)
    assert len(dashboard.charts.panels) == 12 and len(_dashboard().charts.panels) == 6
    assert len(TrainingDashboard(moons_config(), panels=["scale"]).charts.panels) == 9
    dashboard.start()
    dashboard.join(60)
    figure = dashboard.figure()
    drawn = {trace.yaxis for trace in figure.data if trace.x is not None and len(trace.x)}
    assert {"y7", "y8", "y9", "y11", "y12"} <= drawn  # the rate, r, its rates, logit and weight norms
