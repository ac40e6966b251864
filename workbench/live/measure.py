"""What the explorers compute, as plain library calls on a ``ModelSnapshot`` (usable without widgets).

* ``measure_spectrum``: top-k Hessian eigenpairs (Lanczos), tr(H) (Hutch++) and the SLQ spectral density,
  each with its uncertainty, on the snapshot's probe batch.
* ``landscape_directions``: random filter-normalised, Hessian-eigenvector (filter-normalised) or
  trajectory-PCA directions through the snapshot's weights, with the trajectory projected on them.
* ``landscape_line`` and ``landscape_rows``: 1-D and 2-D loss slices by ``workbench.probes``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from workbench._checks import check_choice, check_float, check_int
from workbench.curvature import (
    EigenResult,
    HessianOperator,
    SpectralDensity,
    TraceResult,
    hessian_trace,
    spectral_density,
    top_eigenpairs,
)
from workbench.live.snapshot import ModelSnapshot
from workbench.params import flatten
from workbench.probes import (
    LossSlice1D,
    LossSlice2D,
    filter_normalize,
    hessian_eigen_directions,
    loss_slice_1d,
    loss_slice_2d,
    random_filter_normalized_direction,
    trajectory_pca_directions,
)
from workbench.probes.perturbed import DEFAULT_CHUNK_SIZE, PerturbedLoss

DIRECTION_KINDS = ("random", "eigen", "pca")
DIRECTION_TITLES = {
    "random": "random direction, filter-normalised",
    "eigen": "Hessian eigenvector, filter-normalised",
    "pca": "trajectory PCA direction [parameter units]",
}
#: The span of random and eigen slices, in multiples of the filter-normalised direction (Li et al. 2018 use
#: [-1, 1]: coordinate 1 moves every filter by its own norm).
FILTER_NORMALISED_SPAN = 1.0
#: PCA slices span the projected trajectory with this margin (a display choice: the path stays inside).
TRAJECTORY_MARGIN = 1.25


@dataclass(frozen=True)
class Spectrum:
    """Curvature of a snapshot's loss on its probe batch.

    Attributes:
        label, step: which model (see ``ModelSnapshot``).
        eigen: top-k eigenpairs; ``eigen.residuals[i]`` bounds the distance from ``eigen.eigenvalues[i]`` to the
            nearest true eigenvalue (a Ritz residual of a symmetric matrix).
        trace: tr(H) by Hutch++ with its standard error.
        density: the SLQ density (``num_runs`` independent runs; their spread is its uncertainty).
        num_params: n, the Hessian's size.
        seconds: wall time of the three measurements.
    """

    label: str
    step: int
    eigen: EigenResult
    trace: TraceResult
    density: SpectralDensity
    num_params: int
    seconds: float

    @property
    def slq_trace(self) -> float:
        """tr(H) from the SLQ density (n times its first moment): a check on the Hutch++ estimate."""
        return self.num_params * self.density.moment(1)


def measure_spectrum(
    snapshot: ModelSnapshot,
    *,
    top_k: int = 5,
    slq_runs: int = 10,
    lanczos_steps: int = 80,
    trace_samples: int = 99,
    seed: int = 0,
) -> Spectrum:
    """Top-k eigenvalues, trace and SLQ density of the Hessian of the snapshot's loss on its probe batch.

    Args:
        snapshot: the model and batch.
        top_k: eigenpairs, in [1, 20] (Lanczos to relative residual 1e-4).
        slq_runs: SLQ start vectors, ≥ 2 (their spread gives the density's standard error).
        lanczos_steps: Krylov dimension per SLQ run, ≥ 2.
        trace_samples: Hutch++ budget of Hessian-vector products, ≥ 6.
        seed: seed of every random vector.

    Raises:
        ValueError: for values outside those ranges.
    """
    top_k = check_int("top_k", top_k, minimum=1, maximum=20)
    slq_runs = check_int("slq_runs", slq_runs, minimum=2)
    lanczos_steps = check_int("lanczos_steps", lanczos_steps, minimum=2)
    trace_samples = check_int("trace_samples", trace_samples, minimum=6)
    started = time.perf_counter()
    op = HessianOperator(snapshot.model, snapshot.loss_fn, snapshot.batch)
    eigen = top_eigenpairs(op, k=min(top_k, op.num_params), seed=seed)
    trace = hessian_trace(op, num_samples=trace_samples, seed=seed)
    density = spectral_density(op, num_runs=slq_runs, lanczos_steps=lanczos_steps, seed=seed)
    seconds = time.perf_counter() - started
    return Spectrum(snapshot.label, snapshot.step, eigen, trace, density, op.num_params, seconds)


@dataclass(frozen=True)
class TrajectoryProjection:
    """The recorded weights θ_t seen in a slice's coordinates.

    Attributes:
        steps: ``(T,)`` optimizer steps.
        coords: ``(T, k)`` least-squares coordinates of θ_t − θ along the k directions (in multiples of them).
        loss: ``(T,)`` the loss at θ_t itself on the probe batch (the current BatchNorm statistics).
        captured: share of Σ‖θ_t − θ‖² that lies in the directions' span, in [0, 1].
    """

    steps: np.ndarray
    coords: np.ndarray
    loss: np.ndarray
    captured: float


@dataclass(frozen=True)
class Directions:
    """Directions through the snapshot's weights θ, for slices θ + x·d₁ (+ y·d₂).

    Attributes:
        kind: one of ``DIRECTION_KINDS``.
        vectors: ``(k, n)`` on the model's device, k = 1 or 2.
        title: axis title naming the kind and units.
        span: suggested half-width of the slice, in multiples of the directions.
        projection: the trajectory in these coordinates, or None without a trajectory.
        explained: for PCA, each direction's share of the trajectory's variance about θ; else None.
    """

    kind: str
    vectors: torch.Tensor
    title: str
    span: float
    projection: TrajectoryProjection | None
    explained: np.ndarray | None = None


def landscape_directions(snapshot: ModelSnapshot, kind: str, *, count: int = 2, seed: int = 0) -> Directions:
    """``count`` directions of ``kind`` through the snapshot's weights, with the trajectory projected on them.

    Args:
        kind: ``"random"`` (Gaussian, filter-normalised; seeds ``seed``, ``seed + 1``), ``"eigen"`` (the top
            Hessian eigenvectors on the probe batch, filter-normalised; their signs are arbitrary) or ``"pca"``
            (principal directions of the recorded trajectory about θ, unit vectors).
        count: 1 or 2.
        seed: seed of random directions and of the eigen solver's start.

    Raises:
        ValueError: for an unknown kind or count, or ``"pca"`` without a trajectory of enough distinct points.
    """
    check_choice("kind", kind, DIRECTION_KINDS)
    count = check_int("count", count, minimum=1, maximum=2)
    model, params = snapshot.model, [p for p in snapshot.model.parameters() if p.requires_grad]
    explained = None
    if kind == "random":
        vectors = torch.stack([random_filter_normalized_direction(model, seed=seed + i) for i in range(count)])
    elif kind == "eigen":
        eigen = hessian_eigen_directions(model, snapshot.loss_fn, snapshot.batch, k=count, seed=seed)
        vectors = torch.stack([filter_normalize(vector, params) for vector in eigen.eigenvectors])
    else:
        if snapshot.trajectory is None or len(snapshot.trajectory.steps) < 2:
            raise ValueError("kind='pca' needs a recorded trajectory (train with a LiveRun); use 'random' or 'eigen'")
        pca = trajectory_pca_directions(
            snapshot.trajectory.params, final=_flat_params(snapshot).cpu(), num_components=count
        )
        vectors = pca.directions.to(params[0].device)
        explained = pca.explained_variance_ratio.numpy()
    projection = project_trajectory(snapshot, vectors)
    if kind == "pca" and projection is not None:
        span = TRAJECTORY_MARGIN * float(np.abs(projection.coords).max())
    else:
        span = FILTER_NORMALISED_SPAN
    return Directions(kind, vectors, DIRECTION_TITLES[kind], span, projection, explained)


def project_trajectory(snapshot: ModelSnapshot, vectors: torch.Tensor) -> TrajectoryProjection | None:
    """The snapshot's trajectory in the coordinates of ``vectors`` ``(k, n)`` (None without a trajectory).

    Coordinates solve the least-squares problem min ‖Σᵢ cᵢ·dᵢ − (θ_t − θ)‖ (normal equations in float64), a
    chunk of snapshots at a time so memory stays at a few snapshots beyond the trajectory itself.
    """
    trajectory = snapshot.trajectory
    if trajectory is None:
        return None
    base = _flat_params(snapshot)
    basis = vectors.detach().to(device=base.device, dtype=torch.float64)
    gram_inverse = torch.linalg.inv(basis @ basis.T)
    objective = PerturbedLoss(snapshot.model, snapshot.loss_fn, snapshot.batch)
    coords, losses, total, inside = [], [], 0.0, 0.0
    for chunk in torch.split(trajectory.params, DEFAULT_CHUNK_SIZE):
        displacements = chunk.to(base.device, torch.float64) - base.double()
        chunk_coords = displacements @ basis.T @ gram_inverse
        coords.append(chunk_coords.cpu())
        total += float((displacements**2).sum())
        inside += float(((chunk_coords @ basis) ** 2).sum())
        losses.append(objective.losses([displacements.to(base.dtype)])[0])
    captured = min(inside / total, 1.0) if total > 0 else 1.0
    return TrajectoryProjection(trajectory.steps.copy(), torch.cat(coords).numpy(), torch.cat(losses).numpy(), captured)


def grid(span: float, resolution: int) -> np.ndarray:
    """``resolution`` evenly spaced coordinates in [-span, span] (an odd resolution includes 0).

    Raises:
        ValueError: for span ≤ 0 or resolution < 2.
    """
    span = check_float("span", span, minimum=0.0, min_inclusive=False)
    resolution = check_int("resolution", resolution, minimum=2)
    return np.linspace(-span, span, resolution)


def landscape_line(snapshot: ModelSnapshot, directions: Directions, coords: np.ndarray) -> LossSlice1D:
    """The loss along θ + α·d₁ at the given α (multiples of d₁), on the probe batch."""
    return loss_slice_1d(snapshot.model, snapshot.loss_fn, snapshot.batch, directions.vectors[0], coords)


def landscape_rows(
    snapshot: ModelSnapshot, directions: Directions, xs: np.ndarray, ys: np.ndarray, *, rows_per_call: int = 1
) -> Iterator[LossSlice2D]:
    """The 2-D slice θ + x·d₁ + y·d₂ on ``xs × ys``, yielded as it fills in: after every ``rows_per_call`` rows of
    y, the whole grid ``(len(ys), len(xs))`` with the rows not yet evaluated as NaN (the last one is complete).

    Raises:
        ValueError: for directions that are not two, or rows_per_call < 1.
    """
    if directions.vectors.shape[0] != 2:
        raise ValueError(f"a 2-D slice needs two directions, got {directions.vectors.shape[0]}")
    rows_per_call = check_int("rows_per_call", rows_per_call, minimum=1)
    loss = np.full((len(ys), len(xs)), np.nan)
    d1, d2 = directions.vectors
    for start in range(0, len(ys), rows_per_call):
        block = ys[start : start + rows_per_call]
        part = loss_slice_2d(snapshot.model, snapshot.loss_fn, snapshot.batch, d1, d2, xs, block)
        loss[start : start + len(block)] = part.loss
        yield LossSlice2D(part.xs, np.asarray(ys, dtype=float), loss.copy(), None, part.direction_norms)


def landscape_plane(snapshot: ModelSnapshot, directions: Directions, xs: np.ndarray, ys: np.ndarray) -> LossSlice2D:
    """The whole 2-D slice at once (``landscape_rows``' last grid)."""
    *_, complete = landscape_rows(snapshot, directions, xs, ys, rows_per_call=len(ys))
    return complete


def _flat_params(snapshot: ModelSnapshot) -> torch.Tensor:
    return flatten([p.detach() for p in snapshot.model.parameters() if p.requires_grad])
