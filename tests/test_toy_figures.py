"""Toy figures and explorer: what is drawn, that each kind of change redraws only what depends on it, and that the
explorer's controls, story and verdict say what its settings do."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from workbench.toy import RunSettings, SharpFlatBasins, run_all, scenario
from workbench.ui.toy_explorer import ToyExplorer
from workbench.viz.landscape_image import landscape_png
from workbench.viz.toy_figures import (
    METHOD_COLORS,
    geometry_figure,
    update_step,
    update_trajectories,
)
from workbench.viz.toy_inset import arrow_labels, inset_half_width, step_arrows

LANDSCAPE = SharpFlatBasins()
START = (-0.7, 1.0)
SETTINGS = RunSettings(rho=0.2, lr=0.02, steps=30)
STEP_ROLES = {"dots", "ball", "unit-ball", "labels"} | {
    f"{kind}:{name}"
    for kind, names in (
        (
            "arrow",
            (
                "perturbation", "gradient", "adversarial", "direction", "used_eigenvector", "eigenvector", "step",
                "lambda1_gradient",
            ),
        ),
        ("cursor", ("lambda1", "rate", "angle", "adversarial", "cosine")),
    )
    for name in names
}


@pytest.fixture(scope="module")
def trajectories():
    return run_all(LANDSCAPE, START, SETTINGS)


def trace(figure, role: str):
    (found,) = figure.select_traces(selector={"meta": role})
    return found


def roles(figure, indexes) -> set[str]:
    return {figure.data[i].meta for i in indexes}


def record_messages(figure) -> list[tuple[str, dict]]:
    """Collect the messages a FigureWidget sends to the browser, by kind."""
    messages: list[tuple[str, dict]] = []
    names = ["_py2js_update", "_py2js_restyle", "_py2js_relayout", "_py2js_animate", "_py2js_addTraces"]
    figure.observe(lambda change: messages.append((change["name"], change["new"])) if change["new"] else None, names)
    return messages


def arrow(figure, name: str) -> tuple[np.ndarray, np.ndarray]:
    drawn = trace(figure, f"arrow:{name}")
    return np.array([drawn.x[0], drawn.y[0]]), np.array([drawn.x[1], drawn.y[1]])


def test_the_inset_draws_the_step_around_theta_in_units_of_rho(trajectories):
    step, focus, rho = 7, "Eigen-SAM", SETTINGS.rho
    figure = geometry_figure(LANDSCAPE, trajectories, rho=rho, step=step, focus=focus, resolution=21)
    record = trajectories[focus]
    theta, eps = record.positions[step], record.perturbations[step]
    tail, tip = arrow(figure, "perturbation")
    np.testing.assert_allclose(tail, 0.0)
    np.testing.assert_allclose(tip, eps / rho)  # ε to scale
    tail, tip = arrow(figure, "adversarial")
    np.testing.assert_allclose(tail, eps / rho)  # g_adv drawn where it is evaluated
    for name, vector in [
        ("gradient", record.gradients[step]),
        ("direction", record.directions[step]),
        ("lambda1_gradient", record.lambda1_gradients[step]),  # the exact ∇λ1 (nonzero off a quadratic)
    ]:
        tail, tip = arrow(figure, name)
        np.testing.assert_allclose(tip - tail, vector / np.linalg.norm(vector))  # unit directions
    tail, tip = arrow(figure, "step")
    np.testing.assert_allclose(tip, (record.positions[step + 1] - theta) / rho)
    half_width = inset_half_width(record, rho)
    assert list(figure.layout.xaxis2.range) == list(figure.layout.yaxis2.range) == [-half_width, half_width]
    assert half_width >= np.abs(record.perturbations / rho).max() + 1.0  # room for ε and g_adv at every step
    unit = trace(figure, "unit-ball")
    np.testing.assert_allclose(np.hypot(unit.x, unit.y), 1.0)
    ball = trace(figure, "ball")  # the ρ-ball on the map, to scale
    np.testing.assert_allclose(np.hypot(np.array(ball.x) - theta[0], np.array(ball.y) - theta[1]), rho)
    dots = trace(figure, "dots")
    np.testing.assert_allclose(np.column_stack([dots.x, dots.y]), [t.positions[step] for t in trajectories.values()])
    assert list(dots.marker.color) == [METHOD_COLORS[method] for method in trajectories]
    assert all(list(trace(figure, f"cursor:{role}").x) == [step, step] for role in ("lambda1", "angle", "cosine"))
    assert figure.layout.yaxis.scaleanchor == "x" and figure.layout.yaxis2.scaleanchor == "x2"  # true angles
    np.testing.assert_allclose(trace(figure, "lambda1:SAM").y, trajectories["SAM"].top_eigenvalues)
    np.testing.assert_allclose(trace(figure, "rate:SAM").y, trajectories["SAM"].lambda1_rates)  # ⟨Δθ, ∇λ1⟩ per step
    assert figure.layout.yaxis7.title.text == "λ1 per step"


def test_gd_focus_draws_no_ascent(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, step=3, focus="GD", resolution=21)
    assert len(trace(figure, "ball").x) == len(trace(figure, "unit-ball").x) == 0
    assert all(len(trace(figure, f"arrow:{name}").x) == 0 for name in ("perturbation", "adversarial", "direction"))
    assert len(trace(figure, "arrow:gradient").x) == 2


def test_long_arrows_are_cut_at_the_inset_edge_and_labels_of_one_tip_merge():
    chosen = scenario("sharp_flat")  # at step 1 SAM is thrown back across the ridge: a step of ~17 ρ
    sam = run_all(chosen.make_landscape(), chosen.start, chosen.settings, methods=["SAM"])["SAM"]
    half_width = inset_half_width(sam, chosen.settings.rho)
    arrows = step_arrows(sam, 1, chosen.settings.rho, half_width=half_width)
    assert arrows["step"].cut and np.abs(arrows["step"].tip).max() <= half_width
    assert "cut at its edge" in arrows["step"].hover
    labels = arrow_labels(arrows)
    # g points along v1 here and ε = ρ·ĝ: three arrows end at one tip and share one label
    assert labels["perturbation"].text == "ε, g, v1"
    assert "gradient" not in labels and "eigenvector" not in labels
    assert labels["step"].text == "θ_t+1 (cut)"


def test_scrubbing_sends_one_animation_frame_of_the_step_traces_only(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, focus="X-SAM", resolution=21, widget=True)
    messages = record_messages(figure)
    update_step(figure, trajectories, rho=SETTINGS.rho, step=12, focus="X-SAM")
    assert [kind for kind, _ in messages] == ["_py2js_animate"]
    message = messages[0][1]
    assert message["animation_opts"]["frame"]["redraw"] is False  # plotly.js redraws these traces, not the figure
    assert roles(figure, message["style_traces"]) <= STEP_ROLES


def test_new_trajectories_redraw_their_methods_and_the_step_in_one_update(trajectories):
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, resolution=21, widget=True)
    messages = record_messages(figure)
    other = run_all(LANDSCAPE, START, replace(SETTINGS, xsam_alpha=1.5), methods=["X-SAM"])
    update_trajectories(figure, {**trajectories, **other}, rho=SETTINGS.rho, step=0, focus="SAM", methods=["X-SAM"])
    assert [kind for kind, _ in messages] == ["_py2js_update"]
    touched = roles(figure, messages[0][1]["style_traces"])
    assert {"path:X-SAM", "lambda1:X-SAM", "cosine:X-SAM"} <= touched
    assert not touched & {"landscape", "minima", "path:SAM", "path:GD"}
    np.testing.assert_allclose(trace(figure, "path:X-SAM").x, other["X-SAM"].positions[:, 0])


def test_a_live_figure_holds_no_numpy_arrays(trajectories):
    """plotly's FigureWidget fails on numpy arrays left unchanged by a partial update (see toy_figures)."""
    explorer = ToyExplorer("sharp_flat", START, SETTINGS, resolution=21)
    explorer.step_slider.value = 5
    explorer.rho.value = 0.1
    explorer.landscape_box.value = "quadratic"  # new x range, same y range: the update that used to fail
    for drawn in explorer.figure.data:
        assert not any(isinstance(value, np.ndarray) for value in drawn._props.values()), drawn.meta


def test_the_map_background_is_the_landscape_in_bands_of_the_viridis_scale():
    png = landscape_png(LANDSCAPE, width=120, levels=10)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    (x_low, x_high), (y_low, y_high) = LANDSCAPE.bounds
    assert width == 120 and height == round(120 * (y_high - y_low) / (x_high - x_low))
    length = struct.unpack(">I", png[33:37])[0]
    rows = np.frombuffer(zlib.decompress(png[41 : 41 + length]), np.uint8).reshape(height, 1 + 3 * width)
    pixels = rows[:, 1:].reshape(height, width, 3).astype(int)
    minimum = LANDSCAPE.minima[0].location  # the lowest band is Viridis' darkest purple (68, 1, 84)
    column = round((minimum[0] - x_low) / (x_high - x_low) * width - 0.5)
    row = round((y_high - minimum[1]) / (y_high - y_low) * height - 0.5)
    assert np.abs(pixels[row, column] - [68, 1, 84]).max() <= 1
    assert np.abs(pixels[0, 0] - [68, 1, 84]).max() > 50  # the corner lies high up the bowl


def test_view_zooms_the_map_only(trajectories):
    view = ((-1.2, 0.2), (-0.5, 0.6))
    figure = geometry_figure(LANDSCAPE, trajectories, rho=SETTINGS.rho, resolution=21, view=view)
    assert (tuple(figure.layout.xaxis.range), tuple(figure.layout.yaxis.range)) == view
    (image,) = figure.layout.images  # the background covers the whole landscape
    assert (image.x, image.sizex) == (LANDSCAPE.bounds[0][0], LANDSCAPE.bounds[0][1] - LANDSCAPE.bounds[0][0])


# -- the explorer ------------------------------------------------------------------------------------------------------


def test_explorer_redraws_by_kind_of_change():
    explorer = ToyExplorer("sharp_flat", START, RunSettings(rho=0.2, lr=0.02, steps=20), resolution=21)
    messages = record_messages(explorer.figure)
    explorer.step_slider.value = 9
    explorer.focus.value = "Eigen-SAM"
    assert [kind for kind, _ in messages] == ["_py2js_animate"] * 2
    assert all(roles(explorer.figure, message["style_traces"]) <= STEP_ROLES for _, message in messages)
    messages.clear()
    explorer.rho.value = 0.1  # GD does not use ρ: not recomputed, not redrawn
    assert explorer.cache.computed == ("SAM", "Eigen-SAM", "X-SAM")
    assert [kind for kind, _ in messages] == ["_py2js_update"]
    touched = roles(explorer.figure, messages[0][1]["style_traces"])
    assert "path:SAM" in touched and "path:GD" not in touched and "landscape" not in touched
    expected = run_all(LANDSCAPE, START, RunSettings(rho=0.1, lr=0.02, steps=20))["SAM"].positions
    np.testing.assert_allclose(trace(explorer.figure, "path:SAM").x, expected[:, 0])
    messages.clear()
    explorer.rho.value = 0.2  # back: remembered, redrawn, nothing recomputed
    assert explorer.cache.computed == () and [kind for kind, _ in messages] == ["_py2js_update"]
    messages.clear()
    explorer.landscape_box.value = "quadratic"
    assert [kind for kind, _ in messages] == ["_py2js_update"]
    assert "landscape" in roles(explorer.figure, messages[0][1]["style_traces"])
    assert explorer.steps.value == explorer.step_slider.max + 1  # the scenario's steps, slider range follows


@pytest.mark.parametrize("trace_clicked", ["landscape", "path:SAM"])
def test_a_click_on_the_map_sets_the_start(trace_clicked):
    explorer = ToyExplorer("quadratic", settings=RunSettings(steps=10), resolution=21)
    index = next(i for i, drawn in enumerate(explorer.figure.data) if drawn.meta == trace_clicked)
    for x, y in [(0.5, -0.25), (-1.0, 0.75)]:  # every click, not only the first
        click = {
            "event_type": "plotly_click",
            "points": {"xs": [x], "ys": [y], "point_indexes": [3], "trace_indexes": [index]},
        }
        explorer.figure._js2py_pointsCallback = click  # what the browser sends on a click
        assert (explorer.start_x.value, explorer.start_y.value) == (x, y)
        assert tuple(explorer.trajectories["SAM"].positions[0]) == (x, y)


def test_every_control_has_its_own_layout_and_stays_visible():
    explorer = ToyExplorer("sharp_flat", settings=RunSettings(steps=10), resolution=21)
    sliders = [explorer.start_x, explorer.start_y, explorer.rho, explorer.lr, explorer.steps, explorer.eigen_alpha]
    sliders += [explorer.xsam_alpha, explorer.freq, explorer.power_iters, explorer.step_slider]
    assert len({id(slider.layout) for slider in sliders}) == len(sliders)
    for source in ("power", "exact", "power"):
        explorer.eigenvector.value = source
        assert all(slider.layout.display in (None, "", "flex") for slider in sliders)
        assert explorer.freq.disabled is explorer.power_iters.disabled is (source == "exact")
    explorer.landscape_box.value = "gaussian_wells"
    assert all(slider.layout.display in (None, "", "flex") for slider in sliders)


def test_the_story_is_the_scenarios_and_says_when_the_settings_differ():
    explorer = ToyExplorer("sharp_flat", resolution=21)
    assert "The scenario" in explorer.story.value and "You changed" not in explorer.story.value
    assert explorer.restore.disabled
    assert "X-SAM</b> → flat" in explorer.status.value
    explorer.rho.value = 0.3
    assert "You changed" in explorer.story.value and "rho 0.1 → 0.3" in explorer.story.value
    assert "oscillating between" in explorer.status.value  # at ρ = 0.3 SAM keeps crossing the ridge
    assert not explorer.restore.disabled
    explorer.restore.click()
    assert explorer.rho.value == 0.1 and "You changed" not in explorer.story.value
    assert "X-SAM</b> → flat" in explorer.status.value


def test_explorer_starts_from_the_scenario():
    explorer = ToyExplorer("sharp_flat", settings=RunSettings(rho=0.1, lr=0.04, steps=20), resolution=21)
    chosen = scenario("sharp_flat")
    assert (explorer.start_x.value, explorer.start_y.value) == chosen.start
    assert (explorer.focus.value, explorer.step_slider.value) == (chosen.focus, chosen.step)
