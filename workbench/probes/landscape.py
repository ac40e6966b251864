"""Loss (and accuracy) on 1-D and 2-D slices of parameter space: θ + α·d and θ + α·d₁ + β·d₂.

The grid points are evaluated ``chunk_size`` at a time with ``torch.func.functional_call`` on stacked parameter
sets under ``torch.func.vmap`` (one batched forward pass per chunk and data batch; the default off the CPU), or
one by one on a private copy of the model whose parameters are overwritten in place (the default on a CPU,
compiled with ``torch.compile`` when the grid is large enough to repay it; ``workbench.probes.pointwise``). The
user's model is in eval mode and its parameters, buffers and flags are left untouched. Directions come from
``workbench.probes.directions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench._checks import check_int
from workbench.inputs import Data, LossFn
from workbench.params import as_flat
from workbench.probes.perturbed import DEFAULT_CHUNK_SIZE, PerturbedLoss, offset_chunks

Direction = torch.Tensor | Sequence[torch.Tensor]
Coordinates = Sequence[float] | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class LossSlice1D:
    """Loss along θ + α·d.

    Attributes:
        coords: ``(m,)`` the α values, in multiples of the direction d (α·‖d‖ is the distance from θ).
        loss: ``(m,)`` the loss at each α (size-weighted mean over the data's batches).
        accuracy: ``(m,)`` fraction of correctly classified samples, in [0, 1], or None if not asked for.
        direction_norm: ‖d‖ in parameter units.
    """

    coords: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    direction_norm: float

    def to_frame(self) -> pd.DataFrame:
        """A tidy table with columns ``coord``, ``loss`` and, when measured, ``accuracy``; one row per point."""
        columns = {"coord": self.coords, "loss": self.loss}
        if self.accuracy is not None:
            columns["accuracy"] = self.accuracy
        return pd.DataFrame(columns)


@dataclass(frozen=True)
class LossSlice2D:
    """Loss on the grid θ + x·d₁ + y·d₂.

    Attributes:
        xs: ``(nx,)`` coordinates along d₁, in multiples of d₁.
        ys: ``(ny,)`` coordinates along d₂, in multiples of d₂.
        loss: ``(ny, nx)``; ``loss[i, j]`` is the loss at ``xs[j]·d₁ + ys[i]·d₂`` (rows follow y, columns x:
            the layout of plotly's ``z`` and matplotlib's ``contour``).
        accuracy: ``(ny, nx)`` in [0, 1] laid out like ``loss``, or None if not asked for.
        direction_norms: (‖d₁‖, ‖d₂‖) in parameter units.
    """

    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    direction_norms: tuple[float, float]

    def to_frame(self) -> pd.DataFrame:
        """A tidy table with columns ``x``, ``y``, ``loss`` and, when measured, ``accuracy``; one row per point."""
        grid_x, grid_y = np.meshgrid(self.xs, self.ys)
        columns = {"x": grid_x.ravel(), "y": grid_y.ravel(), "loss": self.loss.ravel()}
        if self.accuracy is not None:
            columns["accuracy"] = self.accuracy.ravel()
        return pd.DataFrame(columns)


def loss_slice_1d(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    direction: Direction,
    coords: Coordinates,
    *,
    accuracy: bool = False,
    params: Iterable[torch.nn.Parameter] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    vectorize: bool | None = None,
    torch_compile: bool | None = None,
) -> LossSlice1D:
    """The loss at θ + α·d for every α in ``coords``.

    Args:
        model: the network; evaluated in eval mode, never modified.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` averaged over the batch, or ``workbench.batch_loss(fn)``.
        data: one batch or an iterable of batches (size-weighted mean).
        direction: d, flat ``(n,)`` or per-parameter list over ``params`` (e.g. from
            ``random_filter_normalized_direction``).
        coords: the α values, a non-empty 1-D sequence of finite numbers (multiples of d).
        accuracy: also measure classification accuracy (needs an ``(outputs, targets)`` loss with class scores
            ``(batch, classes, ...)`` and integer targets ``(batch, ...)``).
        params: the parameters d covers (default: all that require grad).
        chunk_size: grid points evaluated together, ≥ 1; with ``vectorize`` memory grows linearly with it.
        vectorize: True pushes each chunk through one ``vmap``-ed forward pass over its stacked parameter sets;
            False evaluates point by point on a private copy of the model. None (default): vmap off the CPU, point
            by point on the CPU, where vmap was measured slower than a plain loop for CNNs (benchmarks/RESULTS.md).
        torch_compile: True compiles the forward pass with ``torch.compile`` (a one-off 4–16 s on a CPU, cached per
            model when point by point, then 3–6× faster per point there); False never compiles. None (default):
            point by point on a CPU, compile when one timed point says the grid would take long enough eagerly to
            repay the compilation (the CIFAR-shaped CNN of the benchmark: yes; a small MLP on digits: no).

    Raises:
        ValueError: for a direction of the wrong size, empty or non-finite coords, or chunk_size < 1.
    """
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    alphas = _coordinates(coords, "coords")
    objective = PerturbedLoss(model, loss_fn, data, params=params)
    flat = _direction(direction, objective, "direction")
    chunks = offset_chunks(torch.from_numpy(alphas)[:, None], flat[None], chunk_size)
    losses, accuracies = objective.losses(
        chunks, accuracy=accuracy, vectorize=vectorize, torch_compile=torch_compile, num_points=alphas.size
    )
    return LossSlice1D(
        coords=alphas,
        loss=losses.numpy(),
        accuracy=None if accuracies is None else accuracies.numpy(),
        direction_norm=float(flat.norm()),
    )


def loss_slice_2d(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    d1: Direction,
    d2: Direction,
    xs: Coordinates,
    ys: Coordinates,
    *,
    accuracy: bool = False,
    params: Iterable[torch.nn.Parameter] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    vectorize: bool | None = None,
    torch_compile: bool | None = None,
) -> LossSlice2D:
    """The loss at θ + x·d₁ + y·d₂ on the grid ``xs × ys``.

    Args:
        d1, d2: the two directions, flat ``(n,)`` or per-parameter lists over ``params``.
        xs, ys: coordinates along d₁ and d₂, non-empty 1-D sequences of finite numbers.
        model, loss_fn, data, accuracy, params, chunk_size, vectorize, torch_compile: as in ``loss_slice_1d``.

    Returns:
        A ``LossSlice2D`` whose ``loss`` has shape ``(len(ys), len(xs))``.

    Raises:
        ValueError: for directions of the wrong size, empty or non-finite coordinates, or chunk_size < 1.
    """
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    grid_xs, grid_ys = _coordinates(xs, "xs"), _coordinates(ys, "ys")
    objective = PerturbedLoss(model, loss_fn, data, params=params)
    directions = torch.stack([_direction(d1, objective, "d1"), _direction(d2, objective, "d2")])
    mesh_x, mesh_y = np.meshgrid(grid_xs, grid_ys)
    coefficients = torch.from_numpy(np.stack([mesh_x.ravel(), mesh_y.ravel()], axis=1))
    chunks = offset_chunks(coefficients, directions, chunk_size)
    losses, accuracies = objective.losses(
        chunks, accuracy=accuracy, vectorize=vectorize, torch_compile=torch_compile, num_points=len(coefficients)
    )
    shape = (grid_ys.size, grid_xs.size)
    norms = directions.norm(dim=1)
    return LossSlice2D(
        xs=grid_xs,
        ys=grid_ys,
        loss=losses.numpy().reshape(shape),
        accuracy=None if accuracies is None else accuracies.numpy().reshape(shape),
        direction_norms=(float(norms[0]), float(norms[1])),
    )


def _coordinates(values: Coordinates, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a 1-D sequence of finite numbers") from error
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of finite numbers, got shape {array.shape}"
            f"{'' if np.isfinite(array).all() else ' with non-finite entries'}"
        )
    return array


def _direction(direction: Direction, objective: PerturbedLoss, name: str) -> torch.Tensor:
    flat = as_flat(direction, objective.params, name)
    return flat.detach().to(device=objective.device, dtype=objective.base.dtype)
