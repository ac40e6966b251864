"""The documented scenarios: the sharp-vs-flat split asserted, and scenarios adjusted the way a notebook does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from workbench.toy import SCENARIOS, ending_table, flow_to_minimum, run_all, scenario
from workbench.toy.scenarios import QUICK_STEPS

SHARP, FLAT = 0, 1  # indexes into SharpFlatBasins().minima


@pytest.fixture(scope="module")
def sharp_flat():
    chosen = scenario("sharp_flat")
    landscape = chosen.make_landscape()
    return chosen, landscape, run_all(landscape, chosen.start, chosen.settings)


def test_sam_ends_sharp_and_xsam_flat_from_the_documented_start(sharp_flat):
    chosen, landscape, trajectories = sharp_flat
    assert chosen.start == (-0.62, 0.2)
    table = ending_table(landscape, trajectories).set_index("method")
    assert table["basin"].to_dict() == {"GD": "sharp", "SAM": "sharp", "Eigen-SAM": "sharp", "X-SAM": "flat"}
    # settled inside the basins, not parked on the ridge: λ1 is the basin minimum's own
    np.testing.assert_allclose(table["lambda1"], [25.0, 25.0, 25.0, 2.0], rtol=1e-6)


def test_the_story_of_the_first_two_steps(sharp_flat):
    chosen, landscape, trajectories = sharp_flat
    sam, xsam = trajectories["SAM"], trajectories["X-SAM"]
    assert flow_to_minimum(landscape, [chosen.start])[0] == SHARP  # the start lies in the sharp basin
    # step 0: both ascents cross the ridge, and g_adv points back over it
    assert flow_to_minimum(landscape, [sam.positions[0] + sam.perturbations[0]])[0] == FLAT
    assert sam.angle_adversarial[0] > 90 and xsam.angle_adversarial[0] > 90
    # X-SAM's step across is (1 + α) times longer along v1; both land in the flat basin
    assert flow_to_minimum(landscape, [sam.positions[1], xsam.positions[1]]).tolist() == [FLAT, FLAT]
    # step 1: SAM's ascent crosses back and is thrown into the sharp basin; X-SAM's stays in the flat one
    ascents = [sam.positions[1] + sam.perturbations[1], xsam.positions[1] + xsam.perturbations[1]]
    assert flow_to_minimum(landscape, ascents).tolist() == [SHARP, FLAT]
    assert flow_to_minimum(landscape, [sam.positions[2]])[0] == SHARP
    # Eigen-SAM adds almost nothing: g already points along v1
    assert trajectories["Eigen-SAM"].angle_gradient[0] < 10


def test_every_scenario_is_consistent():
    for name, chosen in SCENARIOS.items():
        assert chosen.landscape == name
        assert chosen.make_landscape().name == name
        assert 0 <= chosen.step < chosen.settings.steps


def test_adjusted_keeps_what_is_none_and_caps_quick_runs():
    chosen = scenario("sharp_flat")
    same = chosen.adjusted(start=None, rho=None, lr=None, focus=None, step=None)
    assert same == chosen
    changed = chosen.adjusted(start=[0.5, -0.2], rho=0.3, xsam_alpha=1.0, focus="X-SAM", step=5)
    assert changed.start == (0.5, -0.2) and changed.focus == "X-SAM" and changed.step == 5
    assert (changed.settings.rho, changed.settings.xsam_alpha, changed.settings.lr) == (0.3, 1.0, chosen.settings.lr)
    quick = scenario("gaussian_wells").adjusted(quick=True, step=250)
    assert quick.settings.steps == QUICK_STEPS and quick.step == QUICK_STEPS - 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": -1.0}, "rho"),
        ({"momentum": 0.9}, "settings keyword"),
        ({"start": (0.0,)}, "start"),
        ({"focus": "Adam"}, "focus"),
        ({"step": 100}, "step"),
        ({"quick": "yes"}, "quick"),
    ],
)
def test_bad_adjustments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scenario("sharp_flat").adjusted(**kwargs)


def test_unknown_scenario_is_named():
    with pytest.raises(ValueError, match="name"):
        scenario("ridge")


def test_a_run_that_keeps_crossing_the_ridge_is_called_oscillating(sharp_flat):
    chosen, landscape, _ = sharp_flat
    # at ρ = 0.3 SAM's ascent reaches over the ridge from either basin: its last steps alternate between them, and the
    # basin of the very last point flips with the parity of the step count
    ends = {}
    for steps in (99, 100):
        trajectories = run_all(landscape, chosen.start, replace(chosen.settings, rho=0.3, steps=steps), methods=["SAM"])
        row = ending_table(landscape, trajectories).iloc[0]
        ends[steps] = row.basin
        assert row.ending == f"oscillating between {row.basin} and {({'sharp', 'flat'} - {row.basin}).pop()}"
    assert ends[99] != ends[100]
    settled = ending_table(landscape, run_all(landscape, chosen.start, chosen.settings, methods=["GD", "X-SAM"]))
    assert settled.ending.tolist() == settled.basin.tolist() == ["sharp", "flat"]
