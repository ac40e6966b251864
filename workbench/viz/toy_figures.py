"""Plotly figures of SAM-family trajectories on a 2-D landscape, built from ``workbench.toy.Trajectory`` records.

``geometry_figure`` draws one figure in two rows, its axes placed by hand so that no title or tick label overlaps
another at any width (the figure fills the width it is given):

* top left, the map: filled contours of L (an image, ``workbench.viz.landscape_image``; hover it for L, click it
  to start there), the minima (stars), every method's path, a dot on each method at step t and, around the focus
  method's θ_t, the ρ-ball to scale (equal axis scales, so angles look right);
* top middle, the step inset (``workbench.viz.toy_inset``): the focus method's step t around θ_t in units of ρ,
  so that its geometry is legible whatever ρ: the ρ-ball (the unit circle), ε, g, v1, g_adv, d, the tracker's v
  where it is not v1, ∇λ1 and the step taken, each an arrow labelled at its tip (hover for its value);
* bottom, per step and per method: λ1 at θ_t, the step's λ1 rate ⟨θ_t+1 − θ_t, ∇λ1(θ_t)⟩ (negative: the step
  walks down λ1), ∠(g, v1), ∠(g_adv, v1) (degrees; 90° marks X-SAM's regime change) and cos∠(ε, v1), each with a
  cursor at step t.

Methods differ by colour and by dash, so curves that coincide stay visible.

Updates rewrite only what a change touches, as one ``FigureUpdate`` (one message for a ``FigureWidget``). All that
depends on the step are scatter traces of their own (dots, balls, arrows, labels, cursors), so ``update_step``
changes those traces' data alone and, on a live figure, as an animation frame without a redraw: plotly.js then
redraws just those traces, not the figure (``FigureUpdate.send(quick=True)``). ``trajectory_changes`` rewrites
the traces of the methods given (paths and curves), ``landscape_changes`` the background, the minima, the map's
ranges and the title; ``update_trajectories`` and ``update_landscape`` apply them with the step's, in one redraw.
Traces carry a ``meta`` naming their role (a ``FigureWidget`` replaces ``uid``s).

Values sent to a figure are plain lists, never numpy arrays. A ``FigureWidget`` (plotly 7.1) sends a 1-D numpy
array as a typed array; when one update changes a property on some traces and not on others, the browser reports
the unchanged typed arrays back as objects keyed by index, and ``BaseFigureWidget._remove_overlapping_props`` then
fails with "The truth value of an array ... is ambiguous" (the kernel tracebacks of issue 11; two scatter traces,
a ``batch_update`` that sets x on one and y on the other, reproduce it in JupyterLab). Lists come back as lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from workbench._checks import check_choice, check_float, check_int
from workbench.toy.landscapes import Bounds, Landscape
from workbench.toy.trajectory import Trajectory
from workbench.viz.figure_update import FigureUpdate
from workbench.viz.landscape_image import landscape_image
from workbench.viz.toy_inset import VECTORS, arrow_labels, inset_half_width, step_arrows

METHOD_COLORS = {"GD": "#7f7f7f", "SAM": "#1f77b4", "Eigen-SAM": "#2ca02c", "X-SAM": "#d62728"}
# Line style per method (dash, width): drawn in this order, so a wide line stays visible under a dashed one.
METHOD_LINES = {"GD": ("solid", 4.0), "SAM": ("solid", 2.5), "Eigen-SAM": ("dash", 2.5), "X-SAM": ("dashdot", 2.0)}
GRID_RESOLUTION = 61  # hover and click grid of the map, per axis
QUICK_GRID_RESOLUTION = 31  # quick mode (tests, previews)
IMAGE_WIDTH = 600  # pixels of the map's background image
FIGURE_HEIGHT = 780  # pixels; the width follows the page

_SIDE_PANELS = {  # trace role → (plotly axis suffix, title, y-axis title, (y range, tick spacing) or None: auto)
    "lambda1": ("3", "λ1 at θ_t", "λ1", None),
    "rate": ("7", "λ1 rate ⟨Δθ, ∇λ1⟩", "λ1 per step", None),
    "angle": ("4", "∠(g, v1)", "degrees", ((0.0, 90.0), 30)),
    "adversarial": ("5", "∠(g_adv, v1)", "degrees", ((0.0, 180.0), 45)),
    "cosine": ("6", "cos∠(ε, v1)", "cosine", ((-1.05, 1.05), 0.5)),
}
_TOP, _BOTTOM = (0.41, 1.0), (0.0, 0.24)  # paper y-domains of the two rows
_MAP_X, _INSET_X = (0.0, 0.45), (0.51, 0.77)
_LEGEND_X = 0.8
_PANEL_GAP = 0.065
_DOT_SIZE, _FOCUS_DOT_SIZE = 10, 15  # pixels
_ARROW_HEAD = 13  # pixels
_CIRCLE = np.linspace(0.0, 2 * np.pi, 73)  # 5° per segment: smooth balls
_LANDSCAPE_HOVER = "θ = (%{x:.3f}, %{y:.3f})<br>L = %{z:.4f}<br>click: start here<extra></extra>"
# where a label sits around its point, by the direction (rounded to 45°) it is pushed to: plotly text positions
_TEXT_POSITIONS = {
    (1, 0): "middle right", (1, 1): "top right", (0, 1): "top center", (-1, 1): "top left",
    (-1, 0): "middle left", (-1, -1): "bottom left", (0, -1): "bottom center", (1, -1): "bottom right",
}  # fmt: skip


def landscape_grid(
    landscape: Landscape, resolution: int = GRID_RESOLUTION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L on a ``resolution × resolution`` grid over ``landscape.bounds``: xs ``(r,)``, ys ``(r,)``, z ``(r, r)``."""
    resolution = check_int("resolution", resolution, minimum=2)
    (x_low, x_high), (y_low, y_high) = landscape.bounds
    xs = torch.linspace(x_low, x_high, resolution, dtype=torch.float64)
    ys = torch.linspace(y_low, y_high, resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    z = landscape.value(grid).reshape(resolution, resolution)
    return xs.numpy(), ys.numpy(), z.numpy()


def geometry_figure(
    landscape: Landscape,
    trajectories: Mapping[str, Trajectory],
    *,
    rho: float,
    step: int = 0,
    focus: str = "SAM",
    resolution: int = GRID_RESOLUTION,
    view: Bounds | None = None,
    widget: bool = False,
) -> go.Figure:
    """The figure described in the module docstring, for ``trajectories`` by method name.

    Args:
        landscape: the landscape the trajectories ran on.
        trajectories: ``Trajectory`` per method (any subset of ``METHOD_COLORS``), all with the same number of steps.
        rho: ρ, the radius of the ball and the inset's unit (units of θ).
        step: t in [0, T − 1], the step shown.
        focus: the method whose step the inset shows (a key of ``trajectories``).
        resolution: points per axis of the grid that the map's hover and click use, ≥ 2.
        view: the map's axis ranges ((x_min, x_max), (y_min, y_max)), a zoom into ``landscape.bounds``; ``None``:
            all of them.
        widget: return a ``go.FigureWidget`` (live in Jupyter) instead of a ``go.Figure``.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    figure = go.Figure(layout=_layout())
    figure.add_trace(
        go.Heatmap(meta="landscape", opacity=0, showscale=False, hovertemplate=_LANDSCAPE_HOVER, name="L")
    )  # invisible: the image shows the landscape, this gives its hover and clicks
    figure.add_trace(
        go.Scatter(
            meta="minima", name="minima", mode="markers", hoverinfo="text",
            marker={"symbol": "star", "size": 14, "color": "white", "line": {"color": "black", "width": 1.5}},
        )
    )  # fmt: skip
    for method in trajectories:
        color, (dash, width) = METHOD_COLORS[method], METHOD_LINES[method]
        line = {"color": color, "dash": dash, "width": width}
        figure.add_trace(
            go.Scatter(
                meta=f"path:{method}", name=method, legendgroup=method, mode="lines+markers", line=line,
                marker={"size": 4, "color": color},
                hovertemplate=f"{method} step %{{customdata[0]}}<br>θ = (%{{x:.3f}}, %{{y:.3f}})"
                "<br>L = %{customdata[1]:.4f}<br>λ1 = %{customdata[2]:.3g}<br>click: start here<extra></extra>",
            )
        )  # fmt: skip
        for role, (axis, title, _, _) in _SIDE_PANELS.items():
            figure.add_trace(
                go.Scatter(
                    meta=f"{role}:{method}", name=method, legendgroup=method, showlegend=False, mode="lines",
                    line=line, xaxis=f"x{axis}", yaxis=f"y{axis}",
                    hovertemplate=f"{method}, step %{{x}}<br>{title} = %{{y:.4g}}<extra></extra>",
                )
            )  # fmt: skip
    _add_step_traces(figure)
    update = FigureUpdate(figure)
    landscape_changes(update, landscape, resolution=resolution)
    if view is not None:
        update.layout({"xaxis.range": list(view[0]), "yaxis.range": list(view[1])})
    trajectory_changes(update, trajectories)
    step_changes(update, trajectories, rho=rho, step=step, focus=focus)
    update.send()
    return go.FigureWidget(figure) if widget else figure


def update_landscape(
    figure: go.Figure,
    landscape: Landscape,
    trajectories: Mapping[str, Trajectory],
    *,
    rho: float,
    step: int,
    focus: str,
    resolution: int = GRID_RESOLUTION,
) -> None:
    """Redraw everything for a new ``landscape`` and its ``trajectories``, in one update."""
    update = FigureUpdate(figure)
    landscape_changes(update, landscape, resolution=resolution)
    trajectory_changes(update, trajectories)
    step_changes(update, trajectories, rho=rho, step=step, focus=focus)
    update.send()


def update_trajectories(
    figure: go.Figure,
    trajectories: Mapping[str, Trajectory],
    *,
    rho: float,
    step: int,
    focus: str,
    methods: Iterable[str] | None = None,
) -> None:
    """Redraw the paths and curves of ``methods`` (default: every method in ``trajectories``) from their new
    trajectories, and the step, in one update; the other methods' traces are left as they are."""
    update = FigureUpdate(figure)
    trajectory_changes(update, trajectories, methods)
    step_changes(update, trajectories, rho=rho, step=step, focus=focus)
    update.send()


def update_step(
    figure: go.Figure, trajectories: Mapping[str, Trajectory], *, rho: float, step: int, focus: str
) -> None:
    """Move the step cursor to t = ``step``: every method's dot at θ_t, the focus method's ρ-ball and inset, the
    cursors; on a live figure, without redrawing anything else.

    Raises:
        ValueError: naming ``step``, ``focus`` or ``rho`` when out of range.
    """
    update = FigureUpdate(figure)
    step_changes(update, trajectories, rho=rho, step=step, focus=focus)
    update.send(quick=True)


def landscape_changes(update: FigureUpdate, landscape: Landscape, *, resolution: int = GRID_RESOLUTION) -> None:
    """The background image, the hover grid (given by its origin and spacing), minima, map ranges and title."""
    xs, ys, z = landscape_grid(landscape, resolution)
    update.trace(
        "landscape", z=z.tolist(), x0=float(xs[0]), dx=float(xs[1] - xs[0]), y0=float(ys[0]), dy=float(ys[1] - ys[0])
    )
    update.trace(
        "minima",
        x=[m.location[0] for m in landscape.minima],
        y=[m.location[1] for m in landscape.minima],
        text=[f"{m.name} minimum<br>L = {m.value:.3f}<br>λ1 = {m.sharpness:.3g}" for m in landscape.minima],
    )
    update.layout(
        {
            "images": [landscape_image(landscape, width=IMAGE_WIDTH)],
            "xaxis.range": list(landscape.bounds[0]),
            "yaxis.range": list(landscape.bounds[1]),
            "title.text": landscape.describe(),
        }
    )


def trajectory_changes(
    update: FigureUpdate, trajectories: Mapping[str, Trajectory], methods: Iterable[str] | None = None
) -> None:
    """The paths and curves of ``methods`` (default: all of ``trajectories``)."""
    methods = list(trajectories) if methods is None else list(methods)
    for method in methods:
        check_choice("methods", method, list(trajectories))
        trajectory = trajectories[method]
        steps = list(range(trajectory.steps + 1))
        table = np.column_stack([steps, trajectory.losses, trajectory.top_eigenvalues])
        update.trace(
            f"path:{method}",
            x=_plain(trajectory.positions[:, 0]),
            y=_plain(trajectory.positions[:, 1]),
            customdata=[_plain(row) for row in table],
        )
        for role, values in _curves(trajectory).items():
            update.trace(f"{role}:{method}", x=steps[: len(values)], y=_plain(values))


def step_changes(
    update: FigureUpdate, trajectories: Mapping[str, Trajectory], *, rho: float, step: int, focus: str
) -> None:
    """The step traces at t = ``step`` (see ``update_step``) and the inset's range.

    Raises:
        ValueError: naming ``step``, ``focus`` or ``rho`` when out of range.
    """
    check_choice("focus", focus, list(trajectories))
    rho = check_float("rho", rho, minimum=0.0, min_inclusive=False)
    trajectory = trajectories[focus]
    step = check_int("step", step, minimum=0, maximum=trajectory.steps - 1)
    methods = list(trajectories)
    points = np.array([trajectories[method].positions[step] for method in methods])
    update.trace(
        "dots",
        x=_plain(points[:, 0]),
        y=_plain(points[:, 1]),
        marker={
            "color": [METHOD_COLORS[method] for method in methods],
            "size": [_FOCUS_DOT_SIZE if method == focus else _DOT_SIZE for method in methods],
        },
        hovertext=[f"{method} at step {step}" for method in methods],
    )
    ascends = focus != "GD"  # GD has no ascent: no ball
    theta = trajectory.positions[step]
    ball = (theta[0] + rho * np.cos(_CIRCLE), theta[1] + rho * np.sin(_CIRCLE)) if ascends else ([], [])
    update.trace("ball", x=_plain(ball[0]), y=_plain(ball[1]))
    unit = (np.cos(_CIRCLE), np.sin(_CIRCLE)) if ascends else ([], [])
    update.trace("unit-ball", x=_plain(unit[0]), y=_plain(unit[1]))
    half_width = inset_half_width(trajectory, rho)
    update.layout({"xaxis2.range": [-half_width, half_width], "yaxis2.range": [-half_width, half_width]})
    arrows = step_arrows(trajectory, step, rho, half_width=half_width)
    for name in VECTORS:
        arrow = arrows.get(name)
        if arrow is None:
            update.trace(f"arrow:{name}", x=[], y=[], hovertext=[])
        else:
            update.trace(
                f"arrow:{name}",
                x=[float(arrow.tail[0]), float(arrow.tip[0])],
                y=[float(arrow.tail[1]), float(arrow.tip[1])],
                hovertext=[arrow.hover, arrow.hover],
            )
    labels = arrow_labels(arrows)
    corner = -0.96 * half_width, 0.96 * half_width
    update.trace(
        "labels",
        x=[corner[0], *(float(arrows[name].tip[0]) for name in labels)],
        y=[corner[1], *(float(arrows[name].tip[1]) for name in labels)],
        text=[f"t = {step}, {focus}", *(f"<b>{label.text}</b>" for label in labels.values())],
        textposition=["bottom right", *(_text_position(label.side) for label in labels.values())],
        textfont={"color": ["#444444", *(VECTORS[name].color for name in labels)]},
        hovertext=[f"step {step} of {focus}; ρ = {rho:.3g}", *(label.hover for label in labels.values())],
    )
    for role, (_, _, _, scale) in _SIDE_PANELS.items():
        if scale is None:  # λ1 and its rate are auto-ranged (from 0): the cursor spans the curves
            values = np.concatenate([_curves(other)[role] for other in trajectories.values()])
            finite = values[np.isfinite(values)]
            span = (min(0.0, float(finite.min())), max(0.0, float(finite.max()))) if finite.size else (0.0, 1.0)
        else:
            span = scale[0]
        update.trace(f"cursor:{role}", x=[step, step], y=list(span))


# -- building blocks -------------------------------------------------------------------------------------------------


def _curves(trajectory: Trajectory) -> dict[str, np.ndarray]:
    """The step panels' curves of one trajectory, by trace role."""
    return {
        "lambda1": trajectory.top_eigenvalues,
        "rate": trajectory.lambda1_rates,
        "angle": trajectory.angle_gradient,
        "adversarial": trajectory.angle_adversarial,
        "cosine": trajectory.cos_perturbation,
    }


def _layout() -> go.Layout:
    """Axes, titles, the inset's key, legend, size and template."""
    axes: dict[str, dict] = {
        "xaxis": {
            "domain": list(_MAP_X), "anchor": "y", "title": {"text": "θ₁"}, "constrain": "domain", "showgrid": False,
            "zeroline": False,
        },
        "yaxis": {
            "domain": list(_TOP), "anchor": "x", "title": {"text": "θ₂"}, "scaleanchor": "x", "scaleratio": 1,
            "constrain": "domain", "showgrid": False, "zeroline": False,
        },
        "xaxis2": {
            "domain": list(_INSET_X), "anchor": "y2", "title": {"text": "(θ − θ_t)₁ / ρ"}, "zeroline": True,
            "constrain": "domain",
        },
        "yaxis2": {
            "domain": list(_TOP), "anchor": "x2", "title": {"text": "(θ − θ_t)₂ / ρ"}, "zeroline": True,
            "scaleanchor": "x2", "scaleratio": 1, "constrain": "domain",
        },
    }  # fmt: skip
    titles = [
        _title("paths from θ_0; dots: θ_t at step t; dashed: ρ-ball", _MAP_X, _TOP[1]),
        _title("step t around θ_t, in units of ρ", _INSET_X, _TOP[1]),
    ]
    for (axis, title, y_title, scale), domain in zip(_SIDE_PANELS.values(), _side_domains(), strict=True):
        axes[f"xaxis{axis}"] = {"domain": list(domain), "anchor": f"y{axis}", "title": {"text": "step"}}
        y_axis: dict = {"domain": list(_BOTTOM), "anchor": f"x{axis}", "title": {"text": y_title, "standoff": 4}}
        if scale is None:  # λ1 and its rate: from 0 (or below), with few digits even when constant
            y_axis.update(rangemode="tozero", tickformat=".3~g")
        else:
            y_axis.update(range=list(scale[0]), dtick=scale[1])
        axes[f"yaxis{axis}"] = y_axis
        titles.append(_title(title, domain, _BOTTOM[1]))
    axis = _SIDE_PANELS["adversarial"][0]
    boundary = {
        "type": "line", "xref": f"x{axis} domain", "yref": f"y{axis}", "x0": 0, "x1": 1, "y0": 90, "y1": 90,
        "line": {"color": "#999999", "width": 1, "dash": "dot"},
    }  # fmt: skip
    return go.Layout(
        **axes,
        annotations=[*titles, _vector_key()],
        shapes=[boundary],
        # the landscape's image comes with ``landscape_changes``; plotly's Layout object only shows an array of
        # images set later by a relayout when the array already existed
        images=[{"visible": False}],
        title={"x": 0.005, "xanchor": "left", "y": 0.995, "yanchor": "top", "font": {"size": 16}},
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 75, "b": 50},
        legend={"x": _LEGEND_X, "y": _TOP[1], "xanchor": "left", "yanchor": "top"},
        modebar={"orientation": "v"},
        hovermode="closest",
        template="plotly_white",
    )


def _side_domains() -> list[tuple[float, float]]:
    """The paper x-domains of the step panels, left to right."""
    width = (1.0 - (len(_SIDE_PANELS) - 1) * _PANEL_GAP) / len(_SIDE_PANELS)
    return [(index * (width + _PANEL_GAP), index * (width + _PANEL_GAP) + width) for index in range(len(_SIDE_PANELS))]


def _title(text: str, x_domain: Sequence[float], top: float) -> dict:
    """A panel title centred above its domain (paper coordinates)."""
    return {
        "text": text, "x": (x_domain[0] + x_domain[1]) / 2, "y": top, "xref": "paper", "yref": "paper",
        "xanchor": "center", "yanchor": "bottom", "yshift": 6, "showarrow": False, "font": {"size": 14},
    }  # fmt: skip


def _vector_key() -> dict:
    """The inset's key below the legend: each vector's colour, label and meaning."""
    lines = [f"<span style='color:{v.color}'>━━ <b>{v.label}</b></span> {v.key}" for v in VECTORS.values()]
    text = "<b>inset</b><br>" + "<br>".join(lines) + "<br><span style='color:#555555'>╌╌ ρ-ball</span> radius ρ"
    return {
        "text": text, "x": _LEGEND_X, "y": _TOP[0], "xref": "paper", "yref": "paper", "xanchor": "left",
        "yanchor": "bottom", "align": "left", "showarrow": False, "font": {"size": 12},
    }  # fmt: skip


def _add_step_traces(figure: go.Figure) -> None:
    """The traces ``step_changes`` fills: dots and ball on the map, the inset's unit ball, arrows (in ``VECTORS``
    order: wider ones first, below) and labels, and the step panels' cursors. None is in the legend."""
    hidden = {"showlegend": False}
    figure.add_trace(
        go.Scatter(
            meta="dots", mode="markers", hoverinfo="text", marker={"line": {"color": "white", "width": 1.5}}, **hidden
        )
    )
    figure.add_trace(
        go.Scatter(meta="ball", mode="lines", line={"color": "white", "dash": "dash"}, hoverinfo="skip", **hidden)
    )
    figure.add_trace(
        go.Scatter(
            meta="unit-ball", mode="lines", line={"color": "#555555", "dash": "dash", "width": 1.5},
            hoverinfo="skip", xaxis="x2", yaxis="y2", **hidden,
        )
    )  # fmt: skip
    for name, style in VECTORS.items():
        figure.add_trace(
            go.Scatter(
                meta=f"arrow:{name}", mode="lines+markers", line={"color": style.color, "width": style.width},
                marker={"symbol": ["circle", "arrow"], "size": [0, _ARROW_HEAD], "angleref": "previous",
                        "color": style.color},
                hoverinfo="text", xaxis="x2", yaxis="y2", **hidden,
            )
        )  # fmt: skip
    figure.add_trace(
        go.Scatter(
            meta="labels", mode="text", textfont={"size": 13}, hoverinfo="text", cliponaxis=False, xaxis="x2",
            yaxis="y2", **hidden,
        )
    )
    for role, (axis, *_) in _SIDE_PANELS.items():
        figure.add_trace(
            go.Scatter(
                meta=f"cursor:{role}", mode="lines", line={"color": "#555555", "width": 1}, hoverinfo="skip",
                xaxis=f"x{axis}", yaxis=f"y{axis}", **hidden,
            )
        )  # fmt: skip


def _text_position(side: Sequence[float]) -> str:
    """The plotly text position that puts a label on ``side`` (a unit vector) of its point."""
    key = tuple(max(-1, min(1, round(float(component) * math.sqrt(2)))) for component in side)
    return _TEXT_POSITIONS.get(key, "middle right")


def _plain(values: np.ndarray | Sequence[float]) -> list[float | None]:
    """``values`` as a list of floats, non-finite ones as ``None`` (a gap): see the module docstring."""
    return [float(value) if math.isfinite(value) else None for value in np.asarray(values, dtype=float).tolist()]
