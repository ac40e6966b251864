"""Directions in parameter space to slice the loss along: filter-normalised random, Hessian eigen, trajectory PCA.

Every direction is a flat tensor ``(n,)`` over the probed parameters in their order (by default all of the
model's parameters that require grad), in their dtype and on their device, ready for ``loss_slice_1d/2d``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from workbench._checks import check_int
from workbench.curvature import EigenResult, HessianOperator, top_eigenpairs
from workbench.inputs import Data, LossFn, select_params
from workbench.params import as_flat, flatten, unflatten


@dataclass(frozen=True)
class TrajectoryPCA:
    """The plane (or subspace) through θ_final that best fits a trajectory θ₀ … θ_T.

    Attributes:
        directions: ``(k, n)`` orthonormal rows, the leading right singular vectors of the matrix whose rows
            are θᵢ − θ_final; each signed so that the first snapshot has a coordinate ≥ 0 along it.
        explained_variance_ratio: ``(k,)`` float64 (CPU) share of Σᵢ ‖θᵢ − θ_final‖² captured by each direction (the
            second moment about θ_final, the point the slice is centred on).
        coordinates: ``(T + 1, k)`` float64 (CPU) coordinates of θᵢ − θ_final along the directions, in parameter units
            (the final snapshot sits at 0 when it is part of the trajectory).
        singular_values: ``(k,)`` float64 (CPU), the corresponding singular values (parameter units).
    """

    directions: torch.Tensor
    explained_variance_ratio: torch.Tensor
    coordinates: torch.Tensor
    singular_values: torch.Tensor


def filter_normalize(
    direction: torch.Tensor | Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    *,
    include_biases_and_norms: bool = False,
) -> torch.Tensor:
    """Rescale a direction filter by filter to the norms of the weights (Li et al. 2018, "filter normalisation").

    For every parameter with two or more dimensions (conv kernels ``(out, in, kh, kw)``, linear weights
    ``(out, in)``), each slice ``d[i]`` along the first dimension (a filter, or a neuron's row) becomes
    ``d[i] · ‖θ[i]‖ / ‖d[i]‖``. Parameters with one dimension or fewer (biases, BatchNorm/LayerNorm scales
    and shifts) get direction 0, or, with ``include_biases_and_norms``, their own value θ, as in the paper's
    reference code (each scalar is its own filter, of norm |θ|).

    Args:
        direction: flat ``(n,)`` or per-parameter list, over ``params`` in order.
        params: the parameters (or tensors shaped like them) the direction lives on.
        include_biases_and_norms: keep the one-dimensional parameters in the direction (default: zero them).

    Returns:
        The normalised direction, flat ``(n,)``, in ``params``' dtype and device.
    """
    tensors = [p.detach() for p in params]
    if not tensors:
        raise ValueError("params is empty: give the parameters the direction lives on")
    flat = as_flat(direction, tensors, "direction").to(device=tensors[0].device, dtype=tensors[0].dtype)
    pieces = []
    for piece, weight in zip(unflatten(flat, tensors), tensors, strict=True):
        if weight.dim() <= 1:
            pieces.append(weight.clone() if include_biases_and_norms else torch.zeros_like(weight))
            continue
        rows, weight_rows = piece.reshape(piece.shape[0], -1), weight.reshape(weight.shape[0], -1)
        row_norms = rows.norm(dim=1, keepdim=True)
        factors = torch.where(row_norms > 0, weight_rows.norm(dim=1, keepdim=True) / row_norms, 0.0)
        pieces.append((rows * factors).reshape(weight.shape))
    return flatten(pieces)


def random_filter_normalized_direction(
    model: torch.nn.Module,
    *,
    params: Iterable[torch.nn.Parameter] | None = None,
    seed: int = 0,
    include_biases_and_norms: bool = False,
) -> torch.Tensor:
    """A Gaussian random direction, filter-normalised to the model's weights (Li et al. 2018).

    The Gaussian is drawn on the CPU in float64 from ``seed`` (the same direction on every device), then
    passed through ``filter_normalize``. Two calls with different seeds give the two axes of a 2-D slice.

    Args:
        model: the network whose current weights set the filter norms.
        params: the parameters the direction covers (default: all that require grad).
        seed: seed of the Gaussian.
        include_biases_and_norms: see ``filter_normalize`` (default: biases and norm layers get direction 0).

    Returns:
        Flat ``(n,)`` direction in the parameters' dtype and device; slice coordinate 1 moves every filter
        by its own norm.
    """
    chosen = select_params(model, params)
    numel = sum(p.numel() for p in chosen)
    gaussian = torch.randn(numel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return filter_normalize(gaussian, chosen, include_biases_and_norms=include_biases_and_norms)


def hessian_eigen_directions(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    k: int = 2,
    params: Iterable[torch.nn.Parameter] | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    seed: int = 0,
    hvp: str = "auto",
) -> EigenResult:
    """The top-k Hessian eigenvectors as slice directions (``result.eigenvectors``, ``(k, n)`` unit rows).

    Their signs are arbitrary (a slice along −v is the mirror image). Filter-normalise them
    (``filter_normalize``) to compare with random filter-normalised slices on the same scale.

    Args:
        k: number of directions, ≥ 1; the rest as in ``top_eigenpairs`` and ``HessianOperator``.
    """
    op = HessianOperator(model, loss_fn, data, params=params, hvp=hvp)
    return top_eigenpairs(op, k=k, tol=tol, max_iter=max_iter, seed=seed)


def trajectory_pca_directions(
    snapshots: torch.Tensor | Sequence[torch.Tensor | Sequence[torch.Tensor]],
    *,
    final: torch.Tensor | Sequence[torch.Tensor] | None = None,
    num_components: int = 2,
) -> TrajectoryPCA:
    """PCA directions of an optimisation trajectory about its end point (Li et al. 2018, section 7).

    The rows θᵢ − θ_final are decomposed by a thin SVD; the leading right singular vectors span the
    subspace through θ_final closest (in summed squared distance) to the trajectory.

    Args:
        snapshots: the parameters along training, as a ``(T + 1, n)`` tensor or a sequence of flat ``(n,)``
            tensors or per-parameter lists (flattened in order).
        final: θ_final, the point the slice is centred on (default: the last snapshot).
        num_components: k, the number of directions, at most the rank of the displacements.

    Raises:
        ValueError: for fewer than two snapshots, unequal sizes, or displacements spanning fewer than
            ``num_components`` dimensions (e.g. a trajectory on a line asked for a plane).
    """
    matrix = _stack_snapshots(snapshots)
    num_components = check_int("num_components", num_components, minimum=1, maximum=min(matrix.shape))
    end = matrix[-1] if final is None else _flat_snapshot(final, "final")
    if end.numel() != matrix.shape[1]:
        raise ValueError(f"final must have {matrix.shape[1]} elements like the snapshots, got {end.numel()}")
    displacements = matrix - end.to(device=matrix.device, dtype=matrix.dtype)
    _, singular, right = torch.linalg.svd(displacements, full_matrices=False)
    total = float((singular.double() ** 2).sum())
    tiny = float(singular[0]) * max(displacements.shape) * torch.finfo(displacements.dtype).eps
    rank = int((singular > tiny).sum()) if total > 0 else 0
    if rank == 0:
        raise ValueError("snapshots all equal final: there is no trajectory to take directions from")
    if rank < num_components:
        raise ValueError(
            f"num_components={num_components} but the displacements θᵢ − θ_final span only {rank} dimension(s); "
            f"num_components must be in [1, {rank}]"
        )
    directions = right[:num_components]
    coordinates = displacements @ directions.T
    signs = torch.where(coordinates[0] < 0, -1.0, 1.0).to(directions.dtype)
    return TrajectoryPCA(
        directions=directions * signs[:, None],
        explained_variance_ratio=singular[:num_components].double().cpu() ** 2 / total,
        coordinates=(coordinates * signs).double().cpu(),
        singular_values=singular[:num_components].double().cpu(),
    )


def _stack_snapshots(snapshots: torch.Tensor | Sequence[torch.Tensor | Sequence[torch.Tensor]]) -> torch.Tensor:
    if isinstance(snapshots, torch.Tensor):
        if snapshots.dim() != 2:
            raise ValueError(f"snapshots must be a (T + 1, n) tensor, got shape {tuple(snapshots.shape)}")
        matrix = snapshots.detach()
    else:
        rows = [_flat_snapshot(item, f"snapshots[{index}]") for index, item in enumerate(snapshots)]
        sizes = {row.numel() for row in rows}
        if len(sizes) > 1:
            raise ValueError(f"snapshots must all have the same number of elements, got sizes {sorted(sizes)}")
        matrix = torch.stack(rows) if rows else torch.zeros(0, 0)
    if matrix.shape[0] < 2:
        raise ValueError(f"snapshots must hold at least 2 parameter vectors, got {matrix.shape[0]}")
    return matrix


def _flat_snapshot(item: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        if item.dim() != 1:
            raise ValueError(f"{name} must be a flat (n,) tensor or a per-parameter list, got {tuple(item.shape)}")
        return item.detach()
    pieces = list(item)
    if not pieces or not all(isinstance(piece, torch.Tensor) for piece in pieces):
        raise ValueError(f"{name} must be a flat (n,) tensor or a non-empty per-parameter list of tensors")
    return flatten([piece.detach() for piece in pieces])
