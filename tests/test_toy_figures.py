"""Toy figures and explorer: what is drawn, and that each kind of change redraws only what depends on it."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.toy import RunSettings, SharpFlatBasins, run_all, scenario
from workbench.ui.toy_explorer import ToyExplorer
from workbench.viz.toy_figures import geometry_figure, update_step, update_trajectories

LANDSCAPE = SharpFlatBasins()
START = (-0.7, 1.0)
SETTINGS = RunSettings(rho=0.2, lr=0.02, steps=30)
STEP_ROLES = {"ball", *(f"vector:{n}" for n in ("gradient", "perturbation", "eigenvector", "adversarial", "direction"))}


@pytest.fixture(scope="module")
def trajectories():
    return run_all(LANDSCAPE, START, SETTINGS)


def trace(figure, role: str):
    (found,) = figure.select_traces(selector={"meta": role})
    return found


def roles(figure, indexes) -> set[str]:
    return {figure.data[i].meta for i in indexes}


def record_messages(figure) -> list[dict]:
    """Collect the messages a FigureWidget sends to the browser."""
    messages: list[dict] = []
    names = ["_py2js_update", "_py2js_restyle", "_py2js_relayout", "_py2js_addTraces", "_py2js_deleteTraces"]
    figure.observe(lambda change: messages.append(change["new"]) if change["new"] else None, names=names)
    return messages


def test_step_vectors_are_drawn_at_the_step(trajectories):
    step, focus = 7, "Eigen-SAM"
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, step=step, focus=focus, resolution=21)
    record = trajectories[focus]
    theta, eps = record.positions[step], record.perturbations[step]
    perturbation = trace(figure, "vector:perturbation")
    np.testing.assert_allclose([perturbation.x[0], perturbation.y[0]], theta)
    np.testing.assert_allclose([perturbation.x[1], perturbation.y[1]], theta + eps)  # ε to scale
    adversarial = trace(figure, "vector:adversarial")
    np.testing.assert_allclose([adversarial.x[0], adversarial.y[0]], theta + eps)  # g_adv where it is evaluated
    for name, vector in [("gradient", record.gradients[step]), ("direction", record.directions[step])]:
        arrow = trace(figure, f"vector:{name}")
        drawn = np.array([arrow.x[1] - arrow.x[0], arrow.y[1] - arrow.y[0]])
        np.testing.assert_allclose(drawn, SETTINGS.rho * vector / np.linalg.norm(vector))  # direction, length ρ
    ball = trace(figure, "ball")
    np.testing.assert_allclose(np.hypot(np.array(ball.x) - theta[0], np.array(ball.y) - theta[1]), SETTINGS.rho)
    assert all(shape.x0 == step for shape in figure.layout.shapes)  # the side panels' cursors
    assert figure.layout.yaxis.scaleanchor == "x"  # equal scales: angles on screen are true angles
    np.testing.assert_allclose(trace(figure, "lambda1:SAM").y, trajectories["SAM"].top_eigenvalues)


def test_gd_focus_draws_no_ascent(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, step=3, focus="GD", resolution=21)
    assert len(trace(figure, "ball").x) == 0
    assert all(len(trace(figure, f"vector:{name}").x) == 0 for name in ("perturbation", "adversarial", "direction"))
    assert len(trace(figure, "vector:gradient").x) == 2


def test_scrubbing_resends_only_the_step_traces(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, focus="X-SAM", resolution=21, widget=True)
    messages = record_messages(figure)
    update_step(figure, trajectories, rho=SETTINGS.rho, step=12, focus="X-SAM")
    assert len(messages) == 1  # one batched message
    touched = roles(figure, messages[0]["style_traces"])
    assert touched <= STEP_ROLES | {f"now:{method}" for method in trajectories} | {"vector:used_eigenvector"}
    assert set(messages[0]["layout_data"]) == {f"shapes.{i}.{end}" for i in range(3) for end in ("x0", "x1")}


def test_new_trajectories_leave_the_contours_alone(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, resolution=21, widget=True)
    messages = record_messages(figure)
    other = run_all(LANDSCAPE, START, RunSettings(rho=0.1, lr=0.02, steps=30))
    update_trajectories(figure, other, rho=0.1, step=0, focus="SAM")
    assert len(messages) == 1
    touched = roles(figure, messages[0]["style_traces"])
    assert "path:SAM" in touched and "landscape" not in touched and "minima" not in touched
    assert "z" not in messages[0]["style_data"]


def test_explorer_redraws_by_kind_of_change():
    explorer = ToyExplorer("sharp_flat", START, RunSettings(rho=0.2, lr=0.02, steps=20), resolution=21)
    messages = record_messages(explorer.figure)
    explorer.step_slider.value = 9
    explorer.focus.value = "Eigen-SAM"
    step_roles = STEP_ROLES | {f"now:{method}" for method in explorer.trajectories} | {"vector:used_eigenvector"}
    assert len(messages) == 2
    assert all(roles(explorer.figure, message["style_traces"]) <= step_roles for message in messages)
    messages.clear()
    explorer.rho.value = 0.1
    assert len(messages) == 1 and "z" not in messages[0]["style_data"]
    assert "path:SAM" in roles(explorer.figure, messages[0]["style_traces"])
    expected = run_all(LANDSCAPE, START, RunSettings(rho=0.1, lr=0.02, steps=20))["SAM"].positions
    np.testing.assert_allclose(trace(explorer.figure, "path:SAM").x, expected[:, 0])
    messages.clear()
    explorer.landscape_box.value = "quadratic"
    assert len(messages) == 1 and "z" in messages[0]["style_data"]
    assert explorer.steps.value == explorer.step_slider.max + 1  # the scenario's steps, slider range follows


def test_explorer_click_sets_the_start():
    explorer = ToyExplorer("quadratic", settings=RunSettings(steps=10), resolution=21)
    messages = record_messages(explorer.figure)
    click = {
        "event_type": "plotly_click",
        "points": {"xs": [0.5], "ys": [-0.25], "point_indexes": [[3, 4]], "trace_indexes": [0]},
    }
    explorer.figure._js2py_pointsCallback = click  # what the browser sends on a click on the contours
    assert (explorer.start_x.value, explorer.start_y.value) == (0.5, -0.25)
    assert tuple(explorer.trajectories["SAM"].positions[0]) == (0.5, -0.25)
    assert len(messages) == 1


def test_view_zooms_the_landscape_panel_only(trajectories):
    view = ((-1.2, 0.2), (-0.5, 0.6))
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, resolution=21, view=view)
    assert (tuple(figure.layout.xaxis.range), tuple(figure.layout.yaxis.range)) == view
    np.testing.assert_allclose(trace(figure, "landscape").x[[0, -1]], LANDSCAPE.bounds[0])  # contours cover all


def test_explorer_starts_from_the_scenario():
    explorer = ToyExplorer("sharp_flat", settings=RunSettings(rho=0.1, lr=0.04, steps=20), resolution=21)
    chosen = scenario("sharp_flat")
    assert (explorer.start_x.value, explorer.start_y.value) == chosen.start
    assert (explorer.focus.value, explorer.step_slider.value) == (chosen.focus, chosen.step)
