"""Live charts: incremental feeding from a History, throttling, thinning, overlays; the static figure matches."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from workbench.train import History
from workbench.ui.charts import LiveCharts, Throttle
from workbench.viz import METRIC_TITLES, dashboard_panels, logged_panels, write_report
from workbench.viz.training_figures import (
    DASHBOARD_METRICS,
    DASHBOARD_PANELS,
    panel_metrics,
    thin_indices,
    training_figure,
)


def _log_steps(history: History, steps: range) -> None:
    for step in steps:
        history.log(step, step / 10, {"train_loss": 1.0 / (step + 1), "lr": 0.1})
        if step % 5 == 0:
            history.log(step, step / 10, {"lambda_1": float(step), "trace": 2.0 * step, "trace_stderr": 0.5})


def _trace(charts: LiveCharts, label: str, metric: str):
    traces = [trace for trace in charts.figure.data if trace.legendgroup == label]
    return traces[DASHBOARD_METRICS.index(metric)]


def test_throttle_waits_the_interval_or_longer_after_a_costly_redraw():
    throttle = Throttle(min_interval=0.05, budget=0.05)
    assert throttle.due()
    throttle.done(time.perf_counter(), cost=0.0)
    assert not throttle.due()
    time.sleep(0.06)
    assert throttle.due()
    throttle.done(time.perf_counter(), cost=0.01)  # 10 ms at a 5 % budget: the next redraw waits 200 ms
    time.sleep(0.06)
    assert not throttle.due()
    with pytest.raises(ValueError, match="budget must be in"):
        Throttle(budget=0.0)


@pytest.mark.parametrize(("count", "max_points"), [(5, 10), (10, 10), (11, 10), (5000, 100), (101, 2)])
def test_thinning_keeps_at_most_max_points_with_both_ends(count, max_points):
    kept = thin_indices(count, max_points)
    assert len(kept) == min(count, max_points)
    assert kept[0] == 0 and kept[-1] == count - 1 and np.all(np.diff(kept) > 0)


def test_the_chart_draws_new_rows_incrementally_and_exactly():
    history = History()
    charts = LiveCharts(min_interval=0.0)
    charts.follow("run", history)
    _log_steps(history, range(0, 12))
    assert charts.refresh(force=True)
    assert list(_trace(charts, "run", "train_loss").x) == list(range(12))
    _log_steps(history, range(12, 20))
    charts.refresh(force=True)
    loss = _trace(charts, "run", "train_loss")
    assert list(loss.x) == list(range(20)) and loss.y[-1] == pytest.approx(1 / 20)
    trace = _trace(charts, "run", "trace")
    assert list(trace.x) == [0, 5, 10, 15] and list(trace.error_y.array) == [0.5] * 4
    assert charts.point_count() == 20 + 4 + 4  # train loss, λ1, trace; lr is not drawn


def test_redraws_are_throttled_and_long_curves_thinned():
    history = History()
    charts = LiveCharts(max_points=50, min_interval=60.0)
    charts.follow("run", history)  # follow draws at once
    _log_steps(history, range(0, 1000))
    assert not charts.refresh(), "a redraw within min_interval must wait"
    assert charts.point_count() == 0
    assert charts.refresh(force=True)
    loss = _trace(charts, "run", "train_loss")
    assert len(loss.x) == 50 and loss.x[0] == 0 and loss.x[-1] == 999
    assert charts.redraws == 2 and charts.seconds_drawing > 0


def test_overlays_keep_their_colour_and_the_followed_run_survives_their_removal():
    history = History()
    _log_steps(history, range(10))
    charts = LiveCharts(min_interval=0.0)
    charts.show_run("old", history.to_frame())
    charts.follow("new", history)
    colors = charts.colors()
    assert charts.labels == ["old", "new"] and colors["old"] != colors["new"]
    charts.remove_run("old")
    _log_steps(history, range(10, 15))
    charts.refresh(force=True)
    assert charts.labels == ["new"] and charts.colors()["new"] == colors["new"]
    assert list(_trace(charts, "new", "train_loss").x) == list(range(15))


def test_the_static_figure_has_the_live_charts_traces():
    history = History()
    _log_steps(history, range(30))
    charts = LiveCharts(min_interval=0.0)
    charts.follow("run", history)
    static = training_figure({"run": history.to_frame()}, colors=charts.colors(), max_points=charts.max_points)
    assert len(static.data) == len(charts.figure.data)
    for live, drawn in zip(charts.figure.data, static.data, strict=True):
        assert np.array_equal(np.asarray(live.x, float), np.asarray(drawn.x, float))
        assert np.array_equal(np.asarray(live.y, float), np.asarray(drawn.y, float))
        assert (live.line.color, live.xaxis, live.yaxis) == (drawn.line.color, drawn.xaxis, drawn.yaxis)


def _log_mechanism(history: History, steps: range) -> None:
    for step in steps:
        if step % 5 == 0:
            history.log(step, step / 10, {"lambda_1_rate": -0.01 * step, "lambda_1_change": -0.011 * step,
                                          "remainder_along": 0.002, "remainder_along_taylor": 0.001,
                                          "logit_norm": 1.0 + step, "weight_norm": 10.0})  # fmt: skip


def test_opt_in_rows_follow_the_mechanism_and_scale_metrics_live_and_static():
    panels = dashboard_panels(["mechanism", "scale"])
    assert len(panels) == len(DASHBOARD_PANELS) + 6
    history = History()
    charts = LiveCharts(min_interval=0.0, panels=panels)
    charts.follow("run", history)
    _log_steps(history, range(12))
    _log_mechanism(history, range(12))
    charts.refresh(force=True)
    traces = [trace for trace in charts.figure.data if trace.legendgroup == "run"]
    by_metric = dict(zip(panel_metrics(panels), traces, strict=True))
    assert list(by_metric["lambda_1_rate"].x) == [0, 5, 10] and by_metric["lambda_1_change"].line.dash == "dot"
    assert list(by_metric["logit_norm"].y) == [1.0, 6.0, 11.0] and len(by_metric["adaptive_sharpness"].x) == 0
    assert len(charts.figure.layout.annotations) == len(panels)  # one title per panel
    static = training_figure({"run": history.to_frame()}, colors=charts.colors(), panels=panels)
    assert [list(trace.x) for trace in static.data] == [list(trace.x) for trace in charts.figure.data]
    with pytest.raises(ValueError, match="extras must be one of"):
        dashboard_panels(["spectrum"])


def test_the_report_draws_the_opt_in_panels_only_for_runs_that_logged_them(tmp_path):
    plain, probed = History(), History()
    _log_steps(plain, range(10))
    _log_steps(probed, range(10))
    _log_mechanism(probed, range(10))
    assert set(logged_panels({"a": plain.to_frame()})) == {"training", "curvature"}
    assert set(logged_panels({"a": plain.to_frame(), "b": probed.to_frame()})) == {
        "training", "curvature", "mechanism", "scale"}  # fmt: skip
    page = write_report({"b": probed.to_frame()}, tmp_path / "report.html", title="t").read_text()
    for metric in ("remainder_along_taylor", "logit_norm"):  # plotly writes the titles as JSON strings
        assert json.dumps(METRIC_TITLES[metric])[1:-1] in page
