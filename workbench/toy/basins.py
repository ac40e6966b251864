"""Which minimum's basin of attraction a point lies in, by following the landscape's gradient flow.

A SAM trajectory with a fixed ρ does not stop at a minimum (it settles near one, or keeps bouncing), so "where it
ended" is defined here as the minimum that gradient flow dθ/dτ = −∇L(θ) reaches from its last point. The flow is
integrated by gradient steps of length 1/(2‖∇²L(θ)‖₂) each, with the exact Hessian at the current point: half the
stable step of the local quadratic model, so a step never jumps over a basin boundary that the flow would not
cross. Points are processed as one batch ``(m, 2)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from workbench._checks import check_float, check_int
from workbench.toy.landscapes import Landscape
from workbench.toy.trajectory import Trajectory


def flow_to_minimum(
    landscape: Landscape,
    points: Sequence[Sequence[float]] | np.ndarray,
    *,
    tolerance: float = 1e-8,
    capture_radius: float = 1e-4,
    max_steps: int = 20000,
) -> np.ndarray:
    """Follow the gradient flow from each point; return the index into ``landscape.minima`` it reaches.

    Args:
        landscape: the loss; its ``minima`` are the candidates.
        points: ``(m, 2)`` start points.
        tolerance: stop a point once ‖∇L‖ ≤ ``tolerance`` (loss units per unit θ), > 0.
        capture_radius: stop a point once it is this close to a minimum (units of θ), > 0: every minimum's basin
            holds a ball around it, and this one is far smaller than any landscape's features here. It spares the
            slow last part of the flow along a flat valley floor.
        max_steps: most flow steps, ≥ 1; a point still moving then (near a saddle or on a long flat floor) gets the
            minimum nearest to where it stopped.

    Returns:
        ``(m,)`` int array: each point's minimum, the one nearest to where its flow stopped.

    Raises:
        ValueError: naming ``points`` when it is not ``(m, 2)``, or the argument out of range.
    """
    tolerance = check_float("tolerance", tolerance, minimum=0.0, min_inclusive=False)
    capture_radius = check_float("capture_radius", capture_radius, minimum=0.0, min_inclusive=False)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    theta = torch.as_tensor(np.asarray(points, dtype=np.float64))
    if theta.dim() != 2 or theta.shape[1] != 2:
        raise ValueError(f"points must have shape (m, 2), got {tuple(theta.shape)}")
    minima = torch.tensor([minimum.location for minimum in landscape.minima], dtype=theta.dtype)
    if len(minima) == 1:  # nothing to decide
        return np.zeros(len(theta), dtype=np.int64)
    for _ in range(max_steps):
        gradient = landscape.gradient(theta)
        captured = torch.cdist(theta, minima).min(dim=1).values <= capture_radius
        moving = (gradient.norm(dim=-1) > tolerance) & ~captured
        if not bool(moving.any()):
            break
        curvature = torch.linalg.matrix_norm(landscape.hessian(theta), ord=2)
        step = 0.5 / curvature.clamp_min(torch.finfo(theta.dtype).tiny)
        theta = torch.where(moving[:, None], theta - step[:, None] * gradient, theta)
    return torch.cdist(theta, minima).argmin(dim=1).numpy()


def basin_name(landscape: Landscape, point: Sequence[float]) -> str:
    """The ``name`` of the minimum whose basin contains ``point`` (x, y), e.g. ``"sharp"`` or ``"flat"``."""
    return landscape.minima[int(flow_to_minimum(landscape, [point])[0])].name


def ending_table(landscape: Landscape, trajectories: Mapping[str, Trajectory], *, last: int = 10) -> pd.DataFrame:
    """Where each trajectory ended: one row per method.

    Columns: method, the final θ (x, y), its loss, the Hessian's eigenvalues there (lambda1 ≥ lambda2; a negative
    lambda2 means the run stopped on a ridge or saddle, not inside a basin), the basin of the final point (the name
    of its minimum), and ``ending``: that name when the last ``last`` points all lie in that basin, else
    "oscillating between A and B" (the basins they visit, in order of first visit): a run with a fixed ρ can keep
    crossing the ridge, and then the final point's basin depends on the parity of the step count.

    Raises:
        ValueError: naming ``last`` when it is below 1.
    """
    last = check_int("last", last, minimum=1)
    methods = list(trajectories)
    tails = [trajectories[method].positions[-last:] for method in methods]
    visited = np.split(flow_to_minimum(landscape, np.concatenate(tails)), np.cumsum([len(t) for t in tails])[:-1])
    ends = np.array([tail[-1] for tail in tails])
    eigenvalues = torch.linalg.eigvalsh(landscape.hessian(torch.from_numpy(ends))).numpy()
    return pd.DataFrame(
        {
            "method": methods,
            "x": ends[:, 0],
            "y": ends[:, 1],
            "loss": [trajectories[method].losses[-1] for method in methods],
            "lambda1": eigenvalues[:, 1],
            "lambda2": eigenvalues[:, 0],
            "basin": [landscape.minima[int(basins[-1])].name for basins in visited],
            "ending": [_ending([landscape.minima[int(index)].name for index in basins]) for basins in visited],
        }
    )


def _ending(basins: Sequence[str]) -> str:
    """One basin name, or "oscillating between A and B" for a sequence that visits several."""
    names = list(dict.fromkeys(basins))
    return names[0] if len(names) == 1 else f"oscillating between {' and '.join(names)}"
