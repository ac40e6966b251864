"""Plotly figures of a Hessian spectrum: the SLQ density with its run-to-run uncertainty, and the top-k
eigenvalues with their residual bounds. Takes ``workbench.live.measure.Spectrum`` results; no training."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.curvature import SpectralDensity
from workbench.live.measure import Spectrum

DENSITY_COLOR = "#1f77b4"
EIGEN_COLOR = "#d62728"
#: The density's log axis shows this many decades below its peak (SLQ densities have tails of ~0 weight).
LOG_DECADES = 7



def run_densities(density: SpectralDensity) -> np.ndarray:
    """Each SLQ run's own smoothed density on ``density.grid``, ``(runs, grid_size)``; their mean is
    ``density.density`` and their spread its uncertainty."""
    kernel = np.exp(-0.5 * ((density.grid[None, None, :] - density.nodes[:, :, None]) / density.sigma) ** 2)
    kernel /= density.sigma * np.sqrt(2 * np.pi)
    return np.einsum("rs,rsg->rg", density.weights, kernel)


def spectrum_figure(spectrum: Spectrum, *, title: str | None = None) -> go.Figure:
    """Two panels: the SLQ eigenvalue density (log scale, mean ± standard error over runs, the top-k eigenvalues
    marked) and the top-k eigenvalues with their residual bounds as error bars; the title gives tr(H) ± its
    standard error (Hutch++) and the SLQ trace as a check."""
    density = spectrum.density
    per_run = run_densities(density)
    mean = per_run.mean(axis=0)
    stderr = per_run.std(axis=0, ddof=1) / np.sqrt(per_run.shape[0])
    floor = max(float(mean.max()) * 10.0**-LOG_DECADES, np.finfo(float).tiny)
    eigenvalues = spectrum.eigen.eigenvalues.double().cpu().numpy()
    residuals = spectrum.eigen.residuals.double().cpu().numpy()
    figure = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.65, 0.35],
        subplot_titles=(
            f"SLQ density ({density.weights.shape[0]} runs, σ = {density.sigma:.3g}), mean ± standard error",
            "top eigenvalues ± residual bound",
        ),
    )
    figure.add_trace(
        go.Scatter(
            x=np.concatenate([density.grid, density.grid[::-1]]),
            y=np.concatenate([np.maximum(mean + stderr, floor), np.maximum(mean - stderr, floor)[::-1]]),
            fill="toself",
            fillcolor="rgba(31, 119, 180, 0.25)",
            line={"width": 0},
            hoverinfo="skip",
            name="± standard error",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(x=density.grid, y=np.maximum(mean, floor), line={"color": DENSITY_COLOR}, name="density"),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=eigenvalues,
            y=np.full_like(eigenvalues, float(mean.max())),
            mode="markers",
            marker={"symbol": "triangle-down", "size": 10, "color": EIGEN_COLOR},
            name="top-k eigenvalues (Lanczos)",
            hovertemplate="λ = %{x:.5g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=np.arange(1, len(eigenvalues) + 1),
            y=eigenvalues,
            error_y={"type": "data", "array": residuals},
            mode="markers",
            marker={"color": EIGEN_COLOR, "size": 8},
            name="λᵢ ± ‖H vᵢ − λᵢ vᵢ‖",
            hovertemplate="λ%{x} = %{y:.5g}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    figure.update_yaxes(type="log", title_text="density", row=1, col=1)
    figure.update_xaxes(title_text="eigenvalue", row=1, col=1)
    figure.update_xaxes(title_text="index i", dtick=1, row=1, col=2)
    figure.update_yaxes(title_text="λᵢ", row=1, col=2)
    trace = spectrum.trace
    heading = title if title is not None else f"Hessian spectrum: {spectrum.label} (step {spectrum.step})"
    figure.update_layout(
        title=f"{heading}<br><sup>tr(H) = {trace.estimate:.4g} ± {trace.stderr:.2g} (Hutch++, {trace.num_hvps} HVPs); "
        f"SLQ trace {spectrum.slq_trace:.4g}; λ1 = {eigenvalues[0]:.4g} ± {residuals[0]:.1g}; "
        f"n = {spectrum.num_params:,} parameters</sup>",
        template="plotly_white",
        height=420,
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 90},
    )
    return figure
