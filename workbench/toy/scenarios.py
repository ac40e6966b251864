"""Ready-made teaching scenarios: a landscape, a start point and settings that show one point about SAM geometry.

``SCENARIOS`` maps each landscape name to its scenario; the explorer loads one when the landscape changes, the
notebook's ``parameters`` cell starts from one.

The sharp-vs-flat scenario (SAM ends in the sharp basin, X-SAM in the flat one) comes from the scripted search
``docs/search_sharp_flat_start.py``: its default coarse grid (2.6 min) found the split near (−0.6, 0.2) at
ρ = 0.1, lr = 0.04 with X-SAM α = 0.5, on 7 of the 9 starts 0.02 apart around it; a finer grid there
(``--steps 100 --rho 0.1 --lr 0.04 --xs -0.66 -0.54 7 --ys 0 0.4 5 --spacing 0.01``, 1 min) gave the start
(−0.62, 0.2), whose 3 × 3 neighbours 0.01 apart all show the same split with 200 steps (so do (−0.62, 0.1) and
(−0.62, 0.3)). The basin boundary there is fractal-like (the ascent crosses the ridge), so starts 0.02 away can
behave differently. ``tests/test_toy_scenarios.py`` asserts the split; v1 is the exact one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from workbench._checks import check_bool, check_choice, check_int
from workbench.toy.landscapes import Landscape, check_point, make_landscape
from workbench.toy.trajectory import METHODS, RunSettings

# Quick mode (tests, previews): at most this many steps.
QUICK_STEPS = 60


@dataclass(frozen=True)
class Scenario:
    """A landscape with a start point and settings, and what to look at.

    Attributes:
        landscape: the registry name (``workbench.toy.landscapes.LANDSCAPES``).
        start: θ_0 as (x, y).
        settings: the run's hyper-parameters.
        story: one paragraph for the reader: what the trajectories show here.
        landscape_params: keyword parameters for ``make_landscape`` (empty: the landscape's defaults).
        focus: the method whose step vectors to look at first (one of ``METHODS``).
        step: the step to look at first, in [0, settings.steps − 1].
    """

    landscape: str
    start: tuple[float, float]
    settings: RunSettings
    story: str
    landscape_params: dict[str, Any] = field(default_factory=dict)
    focus: str = "SAM"
    step: int = 0

    def __post_init__(self) -> None:
        check_point("start", self.start)
        check_choice("focus", self.focus, METHODS)
        check_int("step", self.step, minimum=0, maximum=self.settings.steps - 1)

    def make_landscape(self) -> Landscape:
        """The scenario's landscape object."""
        return make_landscape(self.landscape, **self.landscape_params)

    def adjusted(
        self,
        *,
        start: Sequence[float] | None = None,
        focus: str | None = None,
        step: int | None = None,
        quick: bool = False,
        **settings: Any,
    ) -> Scenario:
        """This scenario with other choices; ``None`` (for ``start``, ``focus``, ``step`` and any ``RunSettings``
        field in ``settings``) keeps the scenario's own. ``quick`` caps the steps at ``QUICK_STEPS`` (and the step
        looked at with them). This is what a notebook's ``parameters`` cell feeds.

        Raises:
            ValueError: naming the argument that is out of range or not a ``RunSettings`` field.
        """
        check_bool("quick", quick)
        chosen = {name: value for name, value in settings.items() if value is not None}
        for name in chosen:  # the names here; RunSettings checks the values
            check_choice("a settings keyword", name, [field.name for field in fields(RunSettings)])
        run = replace(self.settings, **chosen)
        if quick:
            run = replace(run, steps=min(run.steps, QUICK_STEPS))
        step = self.step if step is None else step
        return replace(
            self,
            start=self.start if start is None else check_point("start", start),
            settings=run,
            focus=self.focus if focus is None else focus,
            step=min(step, run.steps - 1) if quick else step,
        )


SCENARIOS: dict[str, Scenario] = {
    "quadratic": Scenario(
        landscape="quadratic",
        start=(-1.6, 1.2),
        settings=RunSettings(rho=0.2, lr=0.05, steps=80),
        story=(
            "One minimum, constant Hessian: v1 points at 30° everywhere (λ1 = 10, λ2 = 1). SAM's ε is ρ·ĝ, so "
            "cos∠(ε, v1) is cos∠(g, v1): the steep direction is descended first, and within 4 steps g runs along "
            "the valley floor and cos∠(ε, v1) falls from 0.97 to 0. Eigen-SAM's ε keeps leaning toward v1 "
            "(cos∠(ε, v1) stays near 0.34). X-SAM shortens the v1 part of each step while ∠(g_adv, v1) < 90°, "
            "here the first 5 steps, as ∠(g_adv, v1) climbs from 11° to 90°; try α = 1 to remove that part."
        ),
    ),
    "sharp_flat": Scenario(
        landscape="sharp_flat",
        start=(-0.62, 0.2),
        settings=RunSettings(rho=0.1, lr=0.04, steps=100, eigen_alpha=0.2, xsam_alpha=0.5),
        story=(
            "Two basins of equal depth, λ1 = 25 (sharp, left) and λ1 = 2 (flat, right); the start lies just inside "
            "the sharp one, so GD goes down into it. At step 0 the ascent ε = ρ·ĝ of SAM and X-SAM crosses the ridge: "
            "g_adv is the flat basin's gradient, pointing back over the ridge (∠(g_adv, v1) ≈ 176°), and both step "
            "into the flat basin. At step 1 SAM's ascent looks back over the ridge at the sharp basin's wall "
            "(curvature 25 against 2): g_adv is 3× longer than g, and the step it takes from there throws it deep "
            "into the sharp basin, where it bounces by ±ρ around the minimum (lr·λ1 = 1). X-SAM's correction grew "
            "the step across the ridge by 1 + α (the "
            "published rule for ∠(g_adv, v1) > 90°), so it landed far enough that its next ascent stays in the flat "
            "basin; it walks down to the flat minimum. Eigen-SAM goes with SAM: g already points along v1 "
            "(∠(g, v1) ≈ 6°), so the component it adds to ε is almost zero."
        ),
        focus="SAM",
        step=1,
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
            "steep walls (cos∠(ε, v1) ≈ 0.01 from step 25 to 100); Eigen-SAM's ε does (0.3 to 0.9)."
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
