"""Spectrum and landscape: the measurements against exact references, their figures, the explorer panels and the
sources they accept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import exact_hessian
from tests.ui_helpers import moons_config, moons_data
from workbench.live.measure import landscape_plane, landscape_rows, project_trajectory
from workbench.live.trajectory import Trajectory
from workbench.probes import loss_slice_2d, random_filter_normalized_direction
from workbench.train import Trainer
from workbench.ui import (
    LiveRun,
    ModelSnapshot,
    landscape_directions,
    landscape_explorer,
    load_snapshot,
    measure_spectrum,
    snapshot_of,
    spectrum_explorer,
)
from workbench.viz import plane_figure, spectrum_figure
from workbench.viz.spectrum_figures import run_densities


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A short SAM run on two moons, saved with its trajectory; returns the run directory."""
    run_dir = tmp_path_factory.mktemp("runs") / "sam"
    run = LiveRun(moons_config(steps=30, probe_every=5), data=moons_data(), run_dir=run_dir)
    run.start()
    run.join(60)
    return run_dir


@pytest.fixture(scope="module")
def snapshot(saved_run) -> ModelSnapshot:
    return load_snapshot(saved_run, data=moons_data())


def test_a_saved_run_loads_as_a_snapshot_with_its_trajectory(saved_run, snapshot):
    assert snapshot.label == "sam" and snapshot.step == 30
    assert snapshot.trajectory.steps.tolist() == [0, 5, 10, 15, 20, 25, 30]
    assert snapshot_of(snapshot) is snapshot
    assert snapshot_of(str(saved_run / "checkpoint.pt")).step == 30


@pytest.mark.parametrize(
    ("source", "message"),
    [("/nonexistent/run", "neither a run folder"), (3.5, "source must be a run directory")],
)
def test_bad_sources_are_refused(source, message):
    with pytest.raises(ValueError, match=message):
        snapshot_of(source)


def test_a_running_trainer_is_refused_but_an_idle_one_is_copied():
    trainer = Trainer(moons_config(steps=3), data=moons_data())
    assert snapshot_of(trainer).step == 0
    trainer.status = "running"  # as seen from another thread while it trains
    with pytest.raises(ValueError, match="wrap it in a LiveRun"):
        snapshot_of(trainer)


def test_measured_spectrum_matches_the_exact_hessian(snapshot):
    spectrum = measure_spectrum(snapshot, top_k=3, slq_runs=6, lanczos_steps=40, trace_samples=300)
    inputs, targets = snapshot.batch
    exact = torch.linalg.eigvalsh(exact_hessian(snapshot.model, F.cross_entropy, inputs, targets).double())
    top = exact.flip(0)[:3].numpy()
    measured = spectrum.eigen.eigenvalues.double().numpy()
    bounds = spectrum.eigen.residuals.double().numpy()
    assert np.all(np.abs(measured - top) <= bounds + 1e-5 * np.abs(top))
    trace = float(exact.sum())
    assert abs(spectrum.trace.estimate - trace) <= 4 * spectrum.trace.stderr + 1e-6 * abs(trace)
    assert np.allclose(run_densities(spectrum.density).mean(axis=0), spectrum.density.density)
    with pytest.raises(ValueError, match="slq_runs must be an integer >= 2"):
        measure_spectrum(snapshot, slq_runs=1)


def test_spectrum_explorer_measures_and_draws_with_uncertainty(snapshot):
    explorer = spectrum_explorer(snapshot, top_k=2, slq_runs=3, lanczos_steps=20, trace_samples=12)
    with pytest.raises(ValueError, match="nothing measured yet"):
        explorer.figure()
    explorer.measure(wait=True)
    assert "Hessian-vector products" in explorer.status.value and not explorer.button.disabled
    assert "± residual bound" in explorer.table.value
    names = [trace.name for trace in explorer.plot.data]
    assert names == ["± standard error", "density", "top-k eigenvalues (Lanczos)", "λᵢ ± ‖H vᵢ − λᵢ vᵢ‖"]
    assert "tr(H) =" in spectrum_figure(explorer.result).layout.title.text
    with pytest.raises(ValueError, match="top_k must be an integer in"):
        spectrum_explorer(snapshot, top_k=0)


def test_random_directions_are_the_probes_filter_normalised_ones(snapshot):
    directions = landscape_directions(snapshot, "random", seed=3)
    expected = random_filter_normalized_direction(snapshot.model, seed=4)
    assert torch.equal(directions.vectors[1], expected) and directions.span == 1.0
    assert directions.projection.coords.shape == (7, 2)


def test_a_trajectory_inside_the_plane_projects_exactly_with_its_true_losses(snapshot):
    d1 = random_filter_normalized_direction(snapshot.model, seed=0)
    d2 = random_filter_normalized_direction(snapshot.model, seed=1)
    base = torch.cat([p.detach().flatten() for p in snapshot.model.parameters()])
    coefficients = torch.tensor([[0.5, -0.25], [0.0, 0.0], [-1.0, 0.75]])
    points = base + coefficients @ torch.stack([d1, d2])
    planar = ModelSnapshot(snapshot.model, snapshot.batch, "planar", 30, trajectory=Trajectory(np.arange(3), points))
    projection = project_trajectory(planar, torch.stack([d1, d2]))
    assert np.allclose(projection.coords, coefficients.numpy(), atol=1e-5)
    assert projection.captured == pytest.approx(1.0, abs=1e-6)
    grid = loss_slice_2d(snapshot.model, snapshot.loss_fn, snapshot.batch, d1, d2, [-1.0, 0.0, 0.5], [-0.25, 0.0, 0.75])
    assert projection.loss[0] == pytest.approx(grid.loss[0, 2], rel=1e-5)  # (0.5, -0.25)
    assert projection.loss[2] == pytest.approx(grid.loss[2, 0], rel=1e-5)  # (-1.0, 0.75)


def test_pca_directions_fit_the_trajectory_and_need_one(snapshot):
    directions = landscape_directions(snapshot, "pca")
    assert directions.explained.sum() <= 1 + 1e-9 and directions.projection.captured > 0.5
    assert directions.span == pytest.approx(1.25 * np.abs(directions.projection.coords).max())
    bare = ModelSnapshot(snapshot.model, snapshot.batch, "bare", 30)
    with pytest.raises(ValueError, match="needs a recorded trajectory"):
        landscape_directions(bare, "pca")
    with pytest.raises(ValueError, match="kind must be one of"):
        landscape_directions(snapshot, "hessian")


def test_the_plane_fills_row_by_row_and_ends_as_one_slice(snapshot):
    directions = landscape_directions(snapshot, "eigen", seed=0)
    xs, ys = np.linspace(-0.5, 0.5, 4), np.linspace(-0.5, 0.5, 3)
    partial = list(landscape_rows(snapshot, directions, xs, ys))
    assert len(partial) == 3 and np.isnan(partial[0].loss[1:]).all() and not np.isnan(partial[0].loss[0]).any()
    whole = loss_slice_2d(snapshot.model, snapshot.loss_fn, snapshot.batch, *directions.vectors, xs, ys)
    assert np.allclose(partial[-1].loss, whole.loss)
    assert np.allclose(landscape_plane(snapshot, directions, xs, ys).loss, whole.loss)
    figure = plane_figure(partial[0], axis_title="d", projection=directions.projection)
    assert figure.data[0].z[1][0] is None, "cells not yet evaluated are sent as null, not NaN"
    with pytest.raises(ValueError, match="view must be one of"):
        plane_figure(whole, view="heatmap", axis_title="d")


def test_landscape_explorer_computes_switches_views_and_reports_errors(snapshot):
    explorer = landscape_explorer(snapshot, kind="pca", resolution=5)
    explorer.compute(wait=True)
    assert [trace.type for trace in explorer.plot.data] == ["contour", "scatter", "scatter"]
    assert "PCA directions explain" in explorer.status.value and explorer.controls["span"].value > 0
    explorer.set(view="surface")
    assert [trace.type for trace in explorer.plot.data] == ["surface", "scatter3d"]
    explorer.compute(dimensions=1, kind="random", wait=True)
    assert explorer.plot.data[0].type == "scatter" and len(explorer.plot.data[0].x) == 5
    bare = landscape_explorer(ModelSnapshot(snapshot.model, snapshot.batch, "bare", 0), kind="pca", resolution=3)
    with pytest.raises(RuntimeError, match="needs a recorded trajectory"):
        bare.compute(wait=True)
    assert "needs a recorded trajectory" in bare.status.value and not bare.buttons["compute"].disabled
    with pytest.raises(ValueError, match="resolution must be an integer in"):
        landscape_explorer(snapshot, resolution=1)


def test_explorers_measure_a_live_dashboard_between_steps():
    from workbench.ui import training_dashboard

    dashboard = training_dashboard(moons_config(steps=100_000, probe_every=None))
    dashboard.start()
    explorer = landscape_explorer(dashboard, kind="random", dimensions=1, resolution=3)
    explorer.compute(wait=True)
    first = explorer.result
    explorer.compute(wait=True)
    dashboard.stop()
    dashboard.join(60)
    assert "step" in explorer.status.value and first is not explorer.result
