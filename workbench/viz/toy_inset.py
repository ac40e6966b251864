"""The geometry of one step as the toy figure's inset draws it: arrows around θ_t in units of ρ, and their labels.

At the scale of the landscape a step's vectors are a few pixels long (ρ = 0.1 on a map 5 wide); the inset shows
them around θ_t with ρ as its unit, so the ρ-ball is the unit circle and the geometry reads the same whatever ρ.
ε and the step taken are drawn to scale, the other vectors as unit directions: g, v1 (oriented along g), g_adv
(from the tip of ε, where it is evaluated), d (the direction handed to SGD), the tracker's v where it is not
v1, and ∇λ1 (the exact gradient of the top eigenvalue: a step with a component against it lowers λ1). The inset
keeps one scale for a whole run (``inset_half_width``) so that it stays still while the steps play; an arrow
longer than the inset is cut at its edge and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from workbench.toy.trajectory import Trajectory


@dataclass(frozen=True)
class VectorStyle:
    """How the inset draws one vector: the ``label`` at its tip, ``color``, arrow ``width`` (pixels), a short
    ``key`` entry and the ``meaning`` its hover starts with."""

    label: str
    color: str
    width: float
    key: str
    meaning: str


# Drawn in this order, wider under narrower, so that arrows along one line (ε and g for SAM) stay visible as stripes.
VECTORS = {
    "perturbation": VectorStyle("ε", "#9467bd", 6.0, "ascent, to scale", "ε, the ascent (to scale)"),
    "gradient": VectorStyle("g", "#ff7f0e", 4.0, "gradient at θ_t", "g = ∇L(θ_t)"),
    "adversarial": VectorStyle("g_adv", "#e377c2", 4.0, "gradient at θ_t + ε", "g_adv = ∇L(θ_t + ε)"),
    "direction": VectorStyle("d", "#17becf", 2.5, "direction to SGD", "d, the direction handed to SGD"),
    "used_eigenvector": VectorStyle("v", "#8c564b", 2.5, "tracker's v (used)", "v, the tracker's eigenvector used"),
    "eigenvector": VectorStyle("v1", "#000000", 1.5, "top eigenvector", "v1, top eigenvector of the exact Hessian"),
    "step": VectorStyle("θ_t+1", "#444444", 1.5, "step taken", "the step taken, θ_t+1 − θ_t = −lr·d"),
    "lambda1_gradient": VectorStyle(
        "∇λ1", "#bcbd22", 2.5, "λ1 grows fastest", "∇λ1 = ∇³L[v1, v1, ·], the direction in which λ1 grows fastest"
    ),
}
INSET_MARGIN = 1.2  # the inset shows θ_t ± 1.2 × the farthest reach of ε and g_adv over the run, in units of ρ
_SAME_DIRECTION = math.cos(math.radians(1.0))  # the tracker's v is drawn only when it is > 1° away from v1
_LABEL_MERGE = 0.3  # arrows whose tips are closer than this (units of ρ) get one label


@dataclass(frozen=True)
class Arrow:
    """One arrow of the inset, in units of ρ around θ_t: ``tail`` and ``tip`` ``(2,)``, its ``hover`` text, and
    whether it was ``cut`` at the inset's edge."""

    tail: np.ndarray
    tip: np.ndarray
    hover: str
    cut: bool


@dataclass(frozen=True)
class Label:
    """The text at an arrow's tip (several names when tips coincide), its hover text, and the ``side`` of the tip
    it sits on (a unit vector: to the right of the arrow, so that it keeps clear of it)."""

    text: str
    hover: str
    side: tuple[float, float]


def inset_half_width(trajectory: Trajectory, rho: float) -> float:
    """Half the inset's width in units of ρ for ``trajectory``: room for the unit ball, ε and g_adv (drawn from ε)
    at every step."""
    reach = np.abs(trajectory.perturbations / rho).max(axis=1) + 1.0  # |ε/ρ| + the unit arrow g_adv
    finite = reach[np.isfinite(reach)]
    return INSET_MARGIN * max(1.0, float(finite.max()) if finite.size else 1.0)


def step_arrows(trajectory: Trajectory, step: int, rho: float, *, half_width: float) -> dict[str, Arrow]:
    """The inset's arrows at ``step`` by name (keys of ``VECTORS``), inside ``half_width`` (units of ρ).

    Left out: a vector that is zero or undefined (∇λ1 on a quadratic, or where λ1 = λ2), GD's ε, g_adv and d (no
    ascent: g_adv = d = g), and the tracker's v where it is within 1° of v1 or there is none yet.
    """
    theta = trajectory.positions[step]
    origin = np.zeros(2)
    vectors = {
        "perturbation": (origin, trajectory.perturbations[step], True),
        "gradient": (origin, trajectory.gradients[step], False),
        "adversarial": (trajectory.perturbations[step] / rho, trajectory.adversarial_gradients[step], False),
        "direction": (origin, trajectory.directions[step], False),
        "used_eigenvector": (origin, trajectory.used_eigenvectors[step], False),
        "eigenvector": (origin, trajectory.top_eigenvectors[step], False),
        "step": (origin, trajectory.positions[step + 1] - theta, True),
        "lambda1_gradient": (origin, trajectory.lambda1_gradients[step], False),
    }
    if trajectory.method == "GD":
        for name in ("perturbation", "adversarial", "direction"):
            del vectors[name]
    used = trajectory.used_eigenvectors[step]
    if not np.isfinite(used).all() or abs(float(used @ trajectory.top_eigenvectors[step])) > _SAME_DIRECTION:
        del vectors["used_eigenvector"]
    arrows = {}
    for name, (tail, vector, to_scale) in vectors.items():
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0.0:
            continue
        tip, cut = _clipped(tail, tail + (vector / rho if to_scale else vector / norm), half_width)
        hover = f"{VECTORS[name].meaning}<br>({vector[0]:.3g}, {vector[1]:.3g}), norm {norm:.3g}"
        if to_scale:
            hover += f" = {norm / rho:.3g} ρ"
        if cut:
            hover += "<br>(longer than the inset: cut at its edge)"
        arrows[name] = Arrow(tail, tip, hover, cut)
    return arrows


def arrow_labels(arrows: Mapping[str, Arrow]) -> dict[str, Label]:
    """The label of each arrow that gets one: arrows whose tips nearly coincide share the first one's label
    ("ε, g, v1"), the others get none. A label sits to the right of its arrow's tip, so that the labels of arrows
    along one line stack beside it instead of running into each other."""
    groups: dict[str, list[str]] = {}
    for name, arrow in arrows.items():
        owner = next((first for first in groups if np.linalg.norm(arrows[first].tip - arrow.tip) < _LABEL_MERGE), name)
        groups.setdefault(owner, []).append(name)
    labels = {}
    for owner, names in groups.items():
        arrow = arrows[owner]
        direction = arrow.tip - arrow.tail
        unit = direction / max(float(np.linalg.norm(direction)), 1e-12)
        labels[owner] = Label(
            text=", ".join(VECTORS[name].label + (" (cut)" if arrows[name].cut else "") for name in names),
            hover="<br>".join(arrows[name].hover for name in names),
            side=(float(unit[1]), float(-unit[0])),  # the arrow turned by −90°
        )
    return labels


def _clipped(tail: np.ndarray, tip: np.ndarray, half_width: float) -> tuple[np.ndarray, bool]:
    """``tip``, pulled back along the segment from ``tail`` to stay 3 % inside ±``half_width``; and whether it was."""
    limit = half_width * 0.97
    if float(np.abs(tip).max()) <= limit:
        return tip, False
    direction = tip - tail
    # the largest s in [0, 1] with |tail + s·direction| ≤ limit in both coordinates
    exits = [(math.copysign(limit, d) - t) / d for t, d in zip(tail, direction, strict=True) if d != 0.0]
    s = min([1.0, *(value for value in exits if value >= 0.0)])
    return tail + s * direction, True
