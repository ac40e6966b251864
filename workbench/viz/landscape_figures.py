"""Plotly figures of loss slices: a 1-D curve, and a 2-D slice as contours or a surface, with the training
trajectory projected on the plane. Takes ``workbench.probes.LossSlice1D/2D`` and a trajectory projection."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from workbench._checks import check_choice
from workbench.live.measure import TrajectoryProjection
from workbench.probes import LossSlice1D, LossSlice2D

VIEWS = ("contour", "surface")
TRAJECTORY_COLOR = "#d62728"
COLORSCALE = "Viridis"
Y_CUT = 4.0  # a 1-D slice's linear axis stops at the minimum plus this many times the median rise above it
# θ: a white cross with a black outline, visible on the contours and in the legend alike
_THETA_MARKER = {"symbol": "x", "size": 12, "color": "white", "line": {"color": "black", "width": 1.5}}
_LEGEND = {"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0, "yref": "container", "yanchor": "top"}



def _z(loss: np.ndarray, log_scale: bool) -> list:
    """Heights as nested lists, non-finite cells (not yet evaluated, or overflowed) as None: a FigureWidget sends
    2-D arrays as JSON, which has no NaN."""
    values = np.log10(np.maximum(loss, np.finfo(float).tiny)) if log_scale else np.asarray(loss, dtype=float)
    return np.where(np.isfinite(values), values, None).tolist()


def line_figure(slice_1d: LossSlice1D, *, axis_title: str, title: str = "", log_scale: bool = False) -> go.Figure:
    """The loss along one direction, with the starting point θ (coordinate 0) marked.

    On a linear axis, a loss that climbs far above the valley (a factor ``Y_CUT`` beyond its median rise) would
    squash the valley to a line: the axis then stops there, and its title says where and how high the loss goes
    (every point stays in the hover; the log scale shows them all).
    """
    loss = np.asarray(slice_1d.loss, dtype=float)
    figure = go.Figure(
        go.Scatter(x=slice_1d.coords, y=loss, mode="lines+markers", marker={"size": 4}, name="loss", cliponaxis=True)
    )
    centre = int(np.argmin(np.abs(slice_1d.coords)))
    figure.add_trace(
        go.Scatter(x=[slice_1d.coords[centre]], y=[loss[centre]], mode="markers", marker=_THETA_MARKER, name="θ")
    )
    y_axis: dict = {"title": {"text": "loss [nats]"}, "type": "log" if log_scale else "linear"}
    finite = loss[np.isfinite(loss)]
    if not log_scale and finite.size:
        low, median, high = float(finite.min()), float(np.median(finite)), float(finite.max())
        cut = low + Y_CUT * (median - low)
        if high > cut > low:
            pad = 0.04 * (cut - low)
            y_axis.update(range=[low - pad, cut + pad])
            y_axis["title"]["text"] = f"loss [nats], cut at {cut:.3g} (it reaches {high:.3g}: see the log scale)"
    figure.update_layout(
        title=title,
        xaxis_title=f"{axis_title} (‖d‖ = {slice_1d.direction_norm:.3g})",
        yaxis=y_axis,
        template="plotly_white",
        height=460,
        legend=_LEGEND,
        margin={"t": 80, "r": 40},
        modebar={"orientation": "v"},
    )
    return figure


def plane_figure(
    slice_2d: LossSlice2D,
    *,
    view: str = "contour",
    projection: TrajectoryProjection | None = None,
    axis_title: str,
    title: str = "",
    log_scale: bool = False,
) -> go.Figure:
    """A 2-D slice as filled contours (``view="contour"``) or a 3-D surface (``"surface"``).

    The projected trajectory is drawn on the plane (contour) or at the loss of each recorded θ_t (surface); the
    legend says which share of its displacement the plane captures. Not-yet-evaluated (NaN) cells stay blank.

    Raises:
        ValueError: for an unknown view.
    """
    check_choice("view", view, VIEWS)
    z = _z(slice_2d.loss, log_scale)
    z_values = np.array(z, dtype=float)  # None (not evaluated) as NaN
    z_title = "log10 loss" if log_scale else "loss [nats]"
    norms = slice_2d.direction_norms
    x_title, y_title = f"d1: {axis_title} (‖d1‖ = {norms[0]:.3g})", f"d2 (‖d2‖ = {norms[1]:.3g})"
    figure = go.Figure()
    if view == "contour":
        figure.add_trace(
            go.Contour(
                x=slice_2d.xs, y=slice_2d.ys, z=z, colorscale=COLORSCALE, colorbar={"title": z_title}, ncontours=30
            )
        )
        figure.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=_THETA_MARKER, name="θ"))
    else:
        figure.add_trace(
            go.Surface(x=slice_2d.xs, y=slice_2d.ys, z=z, colorscale=COLORSCALE, colorbar={"title": z_title})
        )
    if projection is not None and projection.coords.shape[1] == 2:
        name = f"trajectory ({projection.captured:.0%} of its displacement in this plane)"
        hover = "step %{text}<extra></extra>"
        steps = [str(step) for step in projection.steps]
        if view == "contour":
            figure.add_trace(
                go.Scatter(
                    x=projection.coords[:, 0], y=projection.coords[:, 1], mode="lines+markers",
                    line={"color": TRAJECTORY_COLOR, "width": 3}, marker={"size": 4}, name=name, text=steps,
                    hovertemplate=hover,
                )
            )  # fmt: skip
        else:  # lifted a little above the surface, which would hide a path drawn on it
            heights = np.asarray(_z(projection.loss, log_scale), dtype=float)
            lift = 0.03 * float(np.nanmax(z_values) - np.nanmin(z_values)) if np.isfinite(z_values).any() else 0.0
            figure.add_trace(
                go.Scatter3d(
                    x=projection.coords[:, 0], y=projection.coords[:, 1], z=heights + lift, mode="lines+markers",
                    line={"color": TRAJECTORY_COLOR, "width": 7}, marker={"size": 3, "color": "white"}, name=name,
                    text=steps, hovertemplate=hover,
                )
            )  # fmt: skip
    layout = {
        "title": title,
        "template": "plotly_white",
        "height": 560,
        "showlegend": True,
        "legend": _LEGEND,
        "margin": {"t": 80, "r": 40},
        "modebar": {"orientation": "v"},
    }
    if view == "contour":
        ranges = {
            "xaxis_range": [slice_2d.xs.min(), slice_2d.xs.max()],
            "yaxis_range": [slice_2d.ys.min(), slice_2d.ys.max()],
        }
        figure.update_layout(**layout, **ranges, xaxis_title=x_title, yaxis_title=y_title)
    else:
        axis = {"nticks": 5, "tickfont": {"size": 10}}
        scene = {
            "xaxis": {**axis, "title": {"text": "d1"}},
            "yaxis": {**axis, "title": {"text": "d2"}},
            "zaxis": {**axis, "title": {"text": z_title}},
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 1.1}},
        }
        figure.update_layout(**layout, scene=scene)
    return figure
