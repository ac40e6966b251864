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



def _z(loss: np.ndarray, log_scale: bool) -> list:
    """Heights as nested lists, non-finite cells (not yet evaluated, or overflowed) as None: a FigureWidget sends
    2-D arrays as JSON, which has no NaN."""
    values = np.log10(np.maximum(loss, np.finfo(float).tiny)) if log_scale else np.asarray(loss, dtype=float)
    return np.where(np.isfinite(values), values, None).tolist()


def line_figure(slice_1d: LossSlice1D, *, axis_title: str, title: str = "", log_scale: bool = False) -> go.Figure:
    """The loss along one direction, with the starting point θ (coordinate 0) marked."""
    figure = go.Figure(
        go.Scatter(x=slice_1d.coords, y=slice_1d.loss, mode="lines+markers", marker={"size": 4}, name="loss")
    )
    centre = int(np.argmin(np.abs(slice_1d.coords)))
    figure.add_trace(
        go.Scatter(
            x=[slice_1d.coords[centre]],
            y=[slice_1d.loss[centre]],
            mode="markers",
            marker={"size": 11, "color": TRAJECTORY_COLOR, "symbol": "x"},
            name="θ",
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title=f"{axis_title} (‖d‖ = {slice_1d.direction_norm:.3g})",
        yaxis={"title": "loss [nats]", "type": "log" if log_scale else "linear"},
        template="plotly_white",
        height=420,
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
        figure.add_trace(
            go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "x", "size": 11, "color": "white"}, name="θ")
        )
    else:
        figure.add_trace(
            go.Surface(x=slice_2d.xs, y=slice_2d.ys, z=z, colorscale=COLORSCALE, colorbar={"title": z_title})
        )
    if projection is not None and projection.coords.shape[1] == 2:
        name = f"trajectory ({projection.captured:.0%} of its displacement in this plane)"
        hover = "step %{text}<extra></extra>"
        steps = [str(step) for step in projection.steps]
        line = {"color": TRAJECTORY_COLOR, "width": 3}
        if view == "contour":
            figure.add_trace(
                go.Scatter(
                    x=projection.coords[:, 0], y=projection.coords[:, 1], mode="lines+markers", line=line,
                    marker={"size": 4}, name=name, text=steps, hovertemplate=hover,
                )
            )  # fmt: skip
        else:
            figure.add_trace(
                go.Scatter3d(
                    x=projection.coords[:, 0], y=projection.coords[:, 1], z=_z(projection.loss, log_scale),
                    mode="lines+markers", line=line, marker={"size": 2}, name=name, text=steps, hovertemplate=hover,
                )
            )  # fmt: skip
    layout = {
        "title": title,
        "template": "plotly_white",
        "height": 520,
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.15},
    }
    if view == "contour":
        ranges = {
            "xaxis_range": [slice_2d.xs.min(), slice_2d.xs.max()],
            "yaxis_range": [slice_2d.ys.min(), slice_2d.ys.max()],
        }
        figure.update_layout(**layout, **ranges, xaxis_title=x_title, yaxis_title=y_title)
    else:
        figure.update_layout(**layout, scene={"xaxis_title": "d1", "yaxis_title": "d2", "zaxis_title": z_title})
    return figure
