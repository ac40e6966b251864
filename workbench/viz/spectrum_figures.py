"""Plotly figures of a Hessian spectrum: the SLQ density with its run-to-run uncertainty, and the top-k
eigenvalues with their residual bounds. Takes ``workbench.live.measure.Spectrum`` results; no training."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.curvature import SpectralDensity
from workbench.live.measure import Spectrum
from workbench.viz.curves import with_uncertainty

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


def slq_trace_stderr(spectrum: Spectrum) -> float:
    """The standard error of the SLQ trace (n times each run's first moment, spread over the runs)."""
    density = spectrum.density
    per_run = spectrum.num_params * np.sum(density.weights * density.nodes.astype(np.float64), axis=1)
    return float(per_run.std(ddof=1) / np.sqrt(len(per_run))) if len(per_run) > 1 else float("nan")


def trace_summary(spectrum: Spectrum) -> str:
    """The two trace estimates with their uncertainties, and which to read: Hutch++ is the trace estimator (its
    low-rank sketch takes in the largest eigenvalues, random probes only the rest); n × the SLQ density's first
    moment is a cross-check, noisier for few runs. When they differ by more than twice their combined standard
    error, the text says so."""
    trace = spectrum.trace
    slq, slq_error = spectrum.slq_trace, slq_trace_stderr(spectrum)
    text = (
        f"tr(H) = {with_uncertainty(trace.estimate, trace.stderr, digits=4)} (Hutch++, {trace.num_hvps} HVPs: the "
        f"estimate to read); SLQ cross-check n·mean(λ) = {with_uncertainty(slq, slq_error, digits=4)}"
    )
    combined = float(np.hypot(trace.stderr, slq_error))
    if np.isfinite(combined) and abs(trace.estimate - slq) > 2 * combined:
        text += " — they disagree beyond their errors: more SLQ runs or Lanczos steps"
    return text


def spectrum_figure(spectrum: Spectrum, *, title: str | None = None) -> go.Figure:
    """Two panels: the SLQ eigenvalue density (log scale, mean ± standard error over runs, the top-k eigenvalues
    marked) and the top-k eigenvalues with their residual bounds as error bars; the subtitle gives the two trace
    estimates (``trace_summary``) and λ1."""
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
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.1,
        subplot_titles=(
            f"SLQ density, {density.weights.shape[0]} runs (σ = {density.sigma:.3g})",
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
    figure.update_yaxes(type="log", exponentformat="power", title_text="density", row=1, col=1)
    figure.update_xaxes(title_text="eigenvalue", row=1, col=1)
    figure.update_xaxes(title_text="index i", dtick=1, row=1, col=2)
    figure.update_yaxes(title_text="λᵢ", row=1, col=2)
    heading = title if title is not None else f"Hessian spectrum: {spectrum.label} (step {spectrum.step})"
    figure.update_layout(
        title={
            "text": f"{heading}<br><sup>{trace_summary(spectrum)}<br>λ1 = {eigenvalues[0]:.4g} ± {residuals[0]:.1g}; "
            f"n = {spectrum.num_params:,} parameters</sup>",
            "x": 0.01,
            "xanchor": "left",
        },
        template="plotly_white",
        height=480,
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0, "yref": "container", "yanchor": "top"},
        margin={"t": 120, "r": 40},
        modebar={"orientation": "v"},  # at the right edge, clear of the legend and the title
    )
    for annotation in figure.layout.annotations:
        annotation.font.size = 14
    return figure
