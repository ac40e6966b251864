"""Plotly figures of SAM-family trajectories on a 2-D landscape, built from ``workbench.toy.Trajectory`` records.

``geometry_figure`` draws one figure with four panels:

* left, the landscape (filled contours, minima as stars, equal axis scales so angles look right) with each
  method's path and, at the chosen step t of the focus method, the step's vectors: g, ε (from θ_t to θ_t + ε,
  to scale), v1, g_adv (at θ_t + ε, where it is evaluated), d (the direction handed to SGD: g_adv, or X-SAM's
  corrected g̃) and the tracker's v when it differs from the exact v1, with the ρ-ball around θ_t. Direction
  arrows (g, v1, g_adv, d, v) have length ρ, so they compare with ε and the ball; their magnitudes are in the hover;
* right, per step: λ1 at θ_t, ∠(g, v1) (solid) and ∠(g_adv, v1) (dotted) in degrees, and cos∠(ε, v1), each with
  a cursor at step t.

Updates rewrite only what a change touches, in one ``batch_update`` (one message to the browser for a
``FigureWidget``): ``update_step`` the vectors, ball, current-point markers and cursors; ``update_trajectories``
the paths and side curves too; ``update_landscape`` the contours, minima and axis ranges. Every trace carries a
``meta`` naming its role (plotly replaces ``uid``s in a ``FigureWidget``), which is how the updates find it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from workbench._checks import check_choice, check_float, check_int
from workbench.toy.landscapes import Bounds, Landscape
from workbench.toy.trajectory import Trajectory

METHOD_COLORS = {"GD": "#7f7f7f", "SAM": "#1f77b4", "Eigen-SAM": "#2ca02c", "X-SAM": "#d62728"}

# Vector name → (label, colour, dash); all drawn as arrows of one step's geometry.
VECTORS = {
    "gradient": ("g = ∇L(θ)", "#ff7f0e", "solid"),
    "perturbation": ("ε (to scale)", "#9467bd", "solid"),
    "eigenvector": ("v1 (exact)", "#000000", "solid"),
    "used_eigenvector": ("v (tracker)", "#000000", "dot"),
    "adversarial": ("g_adv = ∇L(θ+ε)", "#e377c2", "solid"),
    "direction": ("d (to SGD)", "#17becf", "solid"),
}
CIRCLE_POINTS = 73  # 5° per segment: a smooth ρ-ball
GRID_RESOLUTION = 121
QUICK_GRID_RESOLUTION = 41  # quick mode (tests, previews): a coarser contour grid
_ARROW_SIZE = 11
_MAIN, _LAMBDA, _ANGLE, _COSINE = (1, 1), (1, 2), (2, 2), (3, 2)


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
    """The four-panel figure (see the module docstring) for ``trajectories`` by method name.

    Args:
        landscape: the landscape the trajectories ran on.
        trajectories: ``Trajectory`` per method (any subset of ``METHOD_COLORS``), all with the same number of steps.
        rho: ρ, the radius of the ball drawn and the length of the direction arrows (units of θ).
        step: t in [0, T − 1], the step whose vectors are drawn.
        focus: the method whose step vectors are drawn (a key of ``trajectories``).
        resolution: grid points per axis for the contours, ≥ 2.
        view: the landscape panel's axis ranges ((x_min, x_max), (y_min, y_max)), a zoom into
            ``landscape.bounds`` (where the contours are computed); ``None``: all of them.
        widget: return a ``go.FigureWidget`` (live in Jupyter) instead of a ``go.Figure``.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    figure = make_subplots(
        rows=3,
        cols=2,
        specs=[[{"rowspan": 3}, {}], [None, {}], [None, {}]],
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.08,
        vertical_spacing=0.07,
        subplot_titles=("", "λ1 at θ_t", "∠(g, v1) solid, ∠(g_adv, v1) dotted [°]", "cos∠(ε, v1)"),
    )
    figure.add_trace(go.Contour(meta="landscape", showscale=False, colorscale="Viridis", ncontours=30), *_MAIN)
    figure.add_trace(_minima_trace(), *_MAIN)
    for method in trajectories:
        color = METHOD_COLORS[method]
        common = {"legendgroup": method, "line": {"color": color}}
        figure.add_trace(go.Scatter(meta=f"path:{method}", name=method, mode="lines+markers", **common), *_MAIN)
        figure.add_trace(
            go.Scatter(meta=f"now:{method}", mode="markers", showlegend=False, legendgroup=method, hoverinfo="skip"),
            *_MAIN,
        )
        side = {**common, "showlegend": False, "mode": "lines"}
        figure.add_trace(go.Scatter(meta=f"lambda1:{method}", name=method, **side), *_LAMBDA)
        figure.add_trace(go.Scatter(meta=f"angle:{method}", name=f"{method} ∠(g, v1)", **side), *_ANGLE)
        dotted = {**side, "line": {"color": color, "dash": "dot"}}
        figure.add_trace(go.Scatter(meta=f"adversarial:{method}", name=f"{method} ∠(g_adv, v1)", **dotted), *_ANGLE)
        figure.add_trace(go.Scatter(meta=f"cosine:{method}", name=method, **side), *_COSINE)
    figure.add_trace(
        go.Scatter(meta="ball", name="ρ-ball", mode="lines", line={"color": "white", "dash": "dash"}), *_MAIN
    )
    for name, (label, color, dash) in VECTORS.items():
        figure.add_trace(
            go.Scatter(
                meta=f"vector:{name}",
                name=label,
                mode="lines+markers",
                line={"color": color, "width": 3, "dash": dash},
                marker={"symbol": ["circle", "arrow"], "size": [0, _ARROW_SIZE], "angleref": "previous"},
            ),
            *_MAIN,
        )
    for panel in (_LAMBDA, _ANGLE, _COSINE):
        figure.add_vline(x=0, line={"color": "#555555", "width": 1}, row=panel[0], col=panel[1])
    figure.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain", row=1, col=1)
    figure.update_yaxes(range=[0, 180], dtick=45, row=_ANGLE[0], col=_ANGLE[1])
    figure.update_yaxes(range=[-1.05, 1.05], row=_COSINE[0], col=_COSINE[1])
    figure.update_xaxes(title_text="step", row=_COSINE[0], col=_COSINE[1])
    figure.update_layout(
        height=620,
        margin={"l": 40, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.08},
        template="plotly_white",
    )
    update_landscape(figure, landscape, resolution=resolution)
    if view is not None:
        figure.update_xaxes(range=list(view[0]), row=1, col=1)
        figure.update_yaxes(range=list(view[1]), row=1, col=1)
    update_trajectories(figure, trajectories, rho=rho, step=step, focus=focus)
    return go.FigureWidget(figure) if widget else figure


def update_landscape(figure: go.Figure, landscape: Landscape, *, resolution: int = GRID_RESOLUTION) -> None:
    """Redraw the contours, the minima, the main axes' ranges and the title for a new ``landscape``."""
    xs, ys, z = landscape_grid(landscape, resolution)
    with figure.batch_update():
        figure.update_traces(x=xs, y=ys, z=z, selector={"meta": "landscape"})
        figure.update_traces(
            x=[m.location[0] for m in landscape.minima],
            y=[m.location[1] for m in landscape.minima],
            text=[f"{m.name} minimum<br>L = {m.value:.3f}<br>λ1 = {m.sharpness:.3g}" for m in landscape.minima],
            selector={"meta": "minima"},
        )
        figure.update_xaxes(range=list(landscape.bounds[0]), row=1, col=1)
        figure.update_yaxes(range=list(landscape.bounds[1]), row=1, col=1)
        figure.update_layout(title={"text": landscape.describe(), "font": {"size": 14}})


def update_trajectories(
    figure: go.Figure, trajectories: Mapping[str, Trajectory], *, rho: float, step: int, focus: str
) -> None:
    """Redraw every method's path and side curves for new ``trajectories`` (same methods), then ``update_step``."""
    with figure.batch_update():
        for method, trajectory in trajectories.items():
            steps = np.arange(trajectory.steps + 1)
            figure.update_traces(
                x=trajectory.positions[:, 0],
                y=trajectory.positions[:, 1],
                marker={"size": 3},
                customdata=np.column_stack([steps, trajectory.losses, trajectory.top_eigenvalues]),
                hovertemplate=f"{method} step %{{customdata[0]}}<br>θ = (%{{x:.3f}}, %{{y:.3f}})"
                "<br>L = %{customdata[1]:.4f}<br>λ1 = %{customdata[2]:.3g}<extra></extra>",
                selector={"meta": f"path:{method}"},
            )
            figure.update_traces(x=steps, y=trajectory.top_eigenvalues, selector={"meta": f"lambda1:{method}"})
            figure.update_traces(x=steps[:-1], y=trajectory.angle_gradient, selector={"meta": f"angle:{method}"})
            figure.update_traces(
                x=steps[:-1], y=trajectory.angle_adversarial, selector={"meta": f"adversarial:{method}"}
            )
            figure.update_traces(x=steps[:-1], y=trajectory.cos_perturbation, selector={"meta": f"cosine:{method}"})
        update_step(figure, trajectories, rho=rho, step=step, focus=focus)


def update_step(
    figure: go.Figure, trajectories: Mapping[str, Trajectory], *, rho: float, step: int, focus: str
) -> None:
    """Move the step cursor to t = ``step``: the focus method's vectors and ρ-ball, every method's marker at θ_t.

    Raises:
        ValueError: naming ``step``, ``focus`` or ``rho`` when out of range.
    """
    check_choice("focus", focus, list(trajectories))
    rho = check_float("rho", rho, minimum=0.0, min_inclusive=False)
    trajectory = trajectories[focus]
    step = check_int("step", step, minimum=0, maximum=trajectory.steps - 1)
    theta = trajectory.positions[step]
    arrows = _step_arrows(trajectory, step, rho)
    with figure.batch_update():
        for method, other in trajectories.items():
            size = 13 if method == focus else 9
            figure.update_traces(
                x=other.positions[step : step + 1, 0],
                y=other.positions[step : step + 1, 1],
                marker={"size": size, "color": METHOD_COLORS[method], "line": {"color": "white", "width": 2}},
                selector={"meta": f"now:{method}"},
            )
        circle = np.linspace(0.0, 2 * np.pi, CIRCLE_POINTS)
        show_ball = focus != "GD"
        figure.update_traces(
            x=theta[0] + rho * np.cos(circle) if show_ball else [],
            y=theta[1] + rho * np.sin(circle) if show_ball else [],
            selector={"meta": "ball"},
        )
        for name in VECTORS:
            if name not in arrows:  # undefined at this step: an empty trace (NaN would break the widget's JSON)
                figure.update_traces(x=[], y=[], hovertext=[], selector={"meta": f"vector:{name}"})
                continue
            tail, vector, text = arrows[name]
            figure.update_traces(
                x=[tail[0], tail[0] + vector[0]],
                y=[tail[1], tail[1] + vector[1]],
                hovertext=[text, text],
                hoverinfo="text",
                selector={"meta": f"vector:{name}"},
            )
        for shape in figure.layout.shapes:
            shape.update(x0=step, x1=step)


def _step_arrows(trajectory: Trajectory, step: int, rho: float) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Tail, displacement and hover text of each vector in ``VECTORS`` defined at ``step`` (others are left out)."""
    theta = trajectory.positions[step]
    perturbation = trajectory.perturbations[step]
    adversarial_tail = theta + perturbation
    vectors = {
        "gradient": (theta, trajectory.gradients[step]),
        "perturbation": (theta, perturbation),
        "eigenvector": (theta, trajectory.top_eigenvectors[step]),
        "used_eigenvector": (theta, trajectory.used_eigenvectors[step]),
        "adversarial": (adversarial_tail, trajectory.adversarial_gradients[step]),
        "direction": (theta, trajectory.directions[step]),
    }
    if trajectory.method == "GD":  # no ascent: ε = 0 and g_adv = d = g
        for name in ("perturbation", "adversarial", "direction"):
            del vectors[name]
    if np.allclose(trajectory.used_eigenvectors[step], trajectory.top_eigenvectors[step]):
        del vectors["used_eigenvector"]
    arrows = {}
    for name, (tail, vector) in vectors.items():
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            continue
        drawn = vector if name == "perturbation" else rho * vector / norm
        label = VECTORS[name][0]
        arrows[name] = (tail, drawn, f"{label}<br>({vector[0]:.3g}, {vector[1]:.3g}), norm {norm:.3g}")
    return arrows


def _minima_trace() -> go.Scatter:
    return go.Scatter(
        meta="minima",
        name="minima",
        mode="markers",
        marker={"symbol": "star", "size": 14, "color": "white", "line": {"color": "black", "width": 1}},
        hoverinfo="text",
    )
