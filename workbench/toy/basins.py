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
    max_steps: int = 20000,
) -> np.ndarray:
    """Follow the gradient flow from each point; return the index into ``landscape.minima`` it reaches.

    Args:
        landscape: the loss; its ``minima`` are the candidates.
        points: ``(m, 2)`` start points.
        tolerance: stop a point once ‖∇L‖ ≤ ``tolerance`` (loss units per unit θ), > 0.
        max_steps: most flow steps, ≥ 1; a point still moving then (near a saddle or on a long flat floor) gets the
            minimum nearest to where it stopped.

    Returns:
        ``(m,)`` int array: each point's minimum, the one nearest to where its flow stopped.

    Raises:
        ValueError: naming ``points`` when it is not ``(m, 2)``, or the argument out of range.
    """
    tolerance = check_float("tolerance", tolerance, minimum=0.0, min_inclusive=False)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    theta = torch.as_tensor(np.asarray(points, dtype=np.float64))
    if theta.dim() != 2 or theta.shape[1] != 2:
        raise ValueError(f"points must have shape (m, 2), got {tuple(theta.shape)}")
    for _ in range(max_steps):
        gradient = landscape.gradient(theta)
        moving = gradient.norm(dim=-1) > tolerance
        if not bool(moving.any()):
            break
        curvature = torch.linalg.matrix_norm(landscape.hessian(theta), ord=2)
        step = 0.5 / curvature.clamp_min(torch.finfo(theta.dtype).tiny)
        theta = torch.where(moving[:, None], theta - step[:, None] * gradient, theta)
    minima = torch.tensor([minimum.location for minimum in landscape.minima], dtype=theta.dtype)
    return torch.cdist(theta, minima).argmin(dim=1).numpy()


def basin_name(landscape: Landscape, point: Sequence[float]) -> str:
    """The ``name`` of the minimum whose basin contains ``point`` (x, y), e.g. ``"sharp"`` or ``"flat"``."""
    return landscape.minima[int(flow_to_minimum(landscape, [point])[0])].name


def ending_table(landscape: Landscape, trajectories: Mapping[str, Trajectory]) -> pd.DataFrame:
    """Where each trajectory ended: one row per method.

    Columns: method, the final θ (x, y), its loss, the Hessian's eigenvalues there (lambda1 ≥ lambda2; a negative
    lambda2 means the run stopped on a ridge or saddle, not inside a basin) and the basin's minimum name.
    """
    methods = list(trajectories)
    ends = np.array([trajectories[method].positions[-1] for method in methods])
    eigenvalues = torch.linalg.eigvalsh(landscape.hessian(torch.from_numpy(ends))).numpy()
    basins = flow_to_minimum(landscape, ends)
    return pd.DataFrame(
        {
            "method": methods,
            "x": ends[:, 0],
            "y": ends[:, 1],
            "loss": [trajectories[method].losses[-1] for method in methods],
            "lambda1": eigenvalues[:, 1],
            "lambda2": eigenvalues[:, 0],
            "basin": [landscape.minima[index].name for index in basins],
        }
    )
