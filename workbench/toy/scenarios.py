"""Ready-made teaching scenarios: a landscape, a start point and settings that show one point about SAM geometry.

``SCENARIOS`` maps each landscape name to its scenario; the explorer loads one when the landscape changes, the
notebook's ``parameters`` cell starts from one. The sharp-vs-flat scenario is the documented result of the scripted
search ``docs/search_sharp_flat_start.py`` (``tests/test_toy_scenarios.py`` asserts it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench._checks import check_choice
from workbench.toy.landscapes import Landscape, make_landscape
from workbench.toy.trajectory import RunSettings


@dataclass(frozen=True)
class Scenario:
    """A landscape with a start point and settings, and what to look at.

    Attributes:
        landscape: the registry name (``workbench.toy.landscapes.LANDSCAPES``).
        start: θ_0 as (x, y).
        settings: the run's hyper-parameters.
        story: one paragraph for the reader: what the trajectories show here.
        landscape_params: keyword parameters for ``make_landscape`` (empty: the landscape's defaults).
    """

    landscape: str
    start: tuple[float, float]
    settings: RunSettings
    story: str
    landscape_params: dict[str, Any] = field(default_factory=dict)

    def make_landscape(self) -> Landscape:
        """The scenario's landscape object."""
        return make_landscape(self.landscape, **self.landscape_params)


SCENARIOS: dict[str, Scenario] = {
    "quadratic": Scenario(
        landscape="quadratic",
        start=(-1.6, 1.2),
        settings=RunSettings(rho=0.2, lr=0.05, steps=80),
        story=(
            "One minimum, constant Hessian: v1 points at 30° everywhere (λ1 = 10, λ2 = 1). SAM's ε is ρ·ĝ, so "
            "cos∠(ε, v1) equals cos∠(g, v1) and only grows once the slow direction is done. Eigen-SAM leans ε "
            "toward v1 from the first step. X-SAM with α = 1 removes the v1 part of the step while the ascent "
            "stays on the same side of the valley floor (∠(g_adv, v1) < 90°), so it never descends along v1."
        ),
    ),
    "sharp_flat": Scenario(
        landscape="sharp_flat",
        start=(-0.7, 1.0),
        settings=RunSettings(rho=0.2, lr=0.02, steps=150),
        story="Two wells of equal depth, λ1 ≈ 25 (sharp) against λ1 ≈ 2 (flat).",
    ),
    "gaussian_wells": Scenario(
        landscape="gaussian_wells",
        start=(-0.55, 1.0),
        settings=RunSettings(rho=0.1, lr=0.04, steps=300, eigen_alpha=1.0),
        story=(
            "Two Gaussian wells with a shallow saddle between them, at (−0.47, 0). GD and Eigen-SAM (α = 1) go down "
            "into the sharp well; SAM and X-SAM stop on the saddle (λ2 < 0 in the table). Once a point is within ρ "
            "of the saddle, each ascent steps across it and the gradient there sends the point back: SAM can be "
            "attracted to saddle points (Kim et al., 2023). Eigen-SAM's ε, leaning toward v1 on the way, takes it "
            "along another path that misses the saddle."
        ),
    ),
    "curved_valley": Scenario(
        landscape="curved_valley",
        start=(-1.2, 1.5),
        settings=RunSettings(rho=0.05, lr=0.02, steps=250),
        story=(
            "A bending valley: v1 points across the floor and turns with it, and λ1 grows with |x|. On the floor "
            "g runs along the valley, nearly orthogonal to v1 (∠(g, v1) near 90°), so SAM's ε hardly probes the "
            "steep walls; Eigen-SAM's ε does, and bounces across the floor (the saw-tooth in λ1)."
        ),
        landscape_params={"slope": 2.0},
    ),
}


def scenario(name: str) -> Scenario:
    """The scenario for landscape ``name``.

    Raises:
        ValueError: naming ``name`` when no scenario has that landscape.
    """
    return SCENARIOS[check_choice("name", name, SCENARIOS)]
