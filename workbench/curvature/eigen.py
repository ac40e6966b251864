"""Top eigenpairs of a symmetric operator: thick-restart Lanczos (default) and power/subspace iteration.

Lanczos keeps a Krylov basis with full reorthogonalisation and restarts by keeping the best Ritz vectors
(Wu & Simon's thick restart), so its memory is bounded by a basis of ``max(2k + 1, 20)`` vectors whatever the
number of iterations. It converges in far fewer products than power iteration with deflation (the method
PyHessian uses); ``benchmarks/curvature_vs_pyhessian.py`` measures by how much.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from workbench._checks import check_choice, check_float, check_int
from workbench.curvature.linear import SymmetricOperator
from workbench.devices import to_host

EIGEN_METHODS = ("lanczos", "power")


@dataclass(frozen=True)
class EigenResult:
    """Top-k eigenpairs.

    Attributes:
        eigenvalues: ``(k,)`` in descending order (Lanczos: algebraically largest; power: largest |λ|).
        eigenvectors: ``(k, n)``, unit rows, ``eigenvectors[i]`` belonging to ``eigenvalues[i]``.
        residuals: ``(k,)`` Ritz residual norms ‖H vᵢ − λᵢ vᵢ‖ (in the units of λ).
        num_hvps: Hessian-vector products used.
        converged: whether every residual met ``tol · |λᵢ|`` before ``max_iter``.
        method: ``"lanczos"`` or ``"power"``.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    num_hvps: int
    converged: bool
    method: str


def top_eigenpairs(
    op: SymmetricOperator,
    k: int = 1,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    init: torch.Tensor | None = None,
    method: str = "lanczos",
    seed: int = 0,
    basis_device: str | torch.device | None = None,
) -> EigenResult:
    """The k largest eigenvalues of ``op`` and their unit eigenvectors.

    Args:
        op: a ``HessianOperator`` (or any ``SymmetricOperator``) of size n.
        k: number of eigenpairs, ``1 <= k <= n``.
        tol: stop once every pair has ‖H v − λ v‖ ≤ tol · |λ|; the eigenvalue error is then about
            (tol·λ)² / gap, far below tol.
        max_iter: most Lanczos steps (one HVP each) or power iterations (k HVPs each).
        init: warm start, ``(n,)`` or ``(r, n)`` earlier eigenvectors (e.g. from the previous training step).
            Lanczos starts from their normalised sum; power iteration from the rows themselves.
        method: ``"lanczos"`` (algebraically largest eigenvalues) or ``"power"`` (subspace iteration with
            Rayleigh–Ritz; largest in magnitude, as PyHessian computes).
        seed: seed of the random start vector when ``init`` is not given.
        basis_device: where Lanczos keeps its basis of ``max(2k + 1, 20)`` parameter-sized vectors (default: the
            operator's device). ``"cpu"`` keeps it off an accelerator, whose memory then holds only the products
            (each step moves one vector each way).

    Raises:
        ValueError: for k outside [1, n], a bad tol/max_iter/method, or an ``init`` of the wrong size.
    """
    n = op.num_params
    if isinstance(k, int) and not isinstance(k, bool) and k > n:
        raise ValueError(f"k={k} exceeds the number of parameters ({n}); k must be in [1, {n}]")
    k = check_int("k", k, minimum=1, maximum=n)
    tol = check_float("tol", tol, minimum=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    check_choice("method", method, EIGEN_METHODS)
    start = _start_block(op, init, k if method == "power" else 1, seed)
    if method == "lanczos":
        storage = op.device if basis_device is None else torch.device(basis_device)
        result = _lanczos(op, k, tol, max_iter, start, storage)
    else:
        result = _subspace_iteration(op, k, tol, max_iter, start)
    if not result.converged:
        warnings.warn(
            f"top_eigenpairs({method}) stopped at max_iter={max_iter} before reaching tol={tol:g}; "
            f"largest relative residual {float((result.residuals / result.eigenvalues.abs()).max()):.2e}",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def power_iterate(op: SymmetricOperator, init: torch.Tensor | None, steps: int, *, seed: int = 0) -> EigenResult:
    """Exactly ``steps`` power iterations v ← Hv/‖Hv‖ from ``init`` (a fixed budget, as SAM variants use).

    Returns the last iterate (unit, ``(1, n)``), the Rayleigh quotient of the vector before it as the
    eigenvalue estimate, and that vector's residual; ``converged`` is always False (no tolerance is tested).
    Nothing is copied to the host: the eigenvalue and residual are ``(1,)`` tensors on ``op``'s device, so
    a warm-started call never synchronises a GPU (a zero product leaves the vector where it was).
    """
    steps = check_int("steps", steps, minimum=1)
    vector = _start_block(op, init, 1, seed)
    for _ in range(steps):
        product = op.batched_matvec(vector)
        rayleigh = (vector * product).sum()
        residual = (product - rayleigh * vector).norm()
        norm = product.norm()
        vector = torch.where(norm > 0, product / norm.clamp_min(torch.finfo(product.dtype).tiny), vector)
    return EigenResult(
        eigenvalues=rayleigh.reshape(1),
        eigenvectors=vector,
        residuals=residual.reshape(1),
        num_hvps=steps,
        converged=False,
        method="power",
    )


def ritz_refresh(
    op: SymmetricOperator,
    init: torch.Tensor | None,
    products: int,
    *,
    keep: int = 2,
    seed: int = 0,
    tol: float | None = None,
    min_products: int = 2,
) -> EigenResult:
    """Warm-started Rayleigh–Ritz with a budget of at most ``products`` Hessian-vector products.

    The basis holds the rows of ``init`` (``(r, n)``, e.g. the previous refresh's top Ritz vectors; r ≤
    ``products``), extended by the Krylov vectors H q₀, H² q₀, … of its first row q₀, each orthogonalised against
    the others (Gram–Schmidt, twice). Each basis vector costs one product; Rayleigh–Ritz on the basis gives the Ritz
    pairs (θᵢ, yᵢ), and the top vector takes one more power step for free from the stored products:
    v = H y₁ / ‖H y₁‖ = W s₁ / ‖W s₁‖ (W = H Q). With a single start this is Lanczos plus that free step: v lies in
    the Krylov space of dimension m + 1 after m products, as after m power iterations, but is chosen within it by
    Rayleigh–Ritz instead of being the last power iterate.

    Stopping: with ``tol`` None, exactly ``products`` products. With ``tol``, the basis stops growing once it holds
    at least ``min_products`` vectors and the top Ritz pair's relative residual ‖H y₁ − θ₁ y₁‖ / |θ₁| is at most
    ``tol`` (checked before each further product, from the projected matrices alone: no extra product), or at
    ``products``. A warm start close to v1 then costs few products and a poor one gets the whole budget.

    Everything stays on ``op``'s device except the ``(m, m)`` projected matrices (accumulated in float64, so that
    the residual stays accurate for float32 vectors of any size), copied to the host for their eigendecomposition:
    once per call with a fixed budget, once per check with ``tol``. Memory: the basis and its products,
    preallocated for ``products`` rows (2 × ``products`` vectors of size n), and the returned rows. A basis vector
    that collapses (an invariant subspace) is dropped by the Rayleigh–Ritz step (its Gram eigenvalue is below 1e-10
    of the largest).

    Args:
        op: a ``SymmetricOperator`` of size n.
        init: warm start ``(n,)`` or ``(r, n)``, or ``None`` for a seeded random start (as ``power_iterate``).
        products: the budget m ≥ 1 (with ``tol``: the most products).
        keep: Ritz pairs returned, ≥ 1 (the top one with the free power step; the others as Ritz vectors, e.g.
            to warm-start the next call with two rows).
        seed: seed of the random start when ``init`` is ``None``.
        tol: relative residual ≥ 0 at which to stop early, or ``None`` (a fixed budget).
        min_products: the fewest products taken with ``tol``, ≥ 1 (``products`` caps it).

    Returns:
        ``EigenResult`` with ``eigenvalues`` ``(k,)`` the Ritz values (on ``op``'s device; k = min(keep, rank)),
        ``eigenvectors`` ``(k, n)`` unit rows (row 0 is v), ``residuals`` the Ritz residual norms ‖H yᵢ − θᵢ yᵢ‖,
        ``num_hvps`` the products taken, ``converged`` whether ``tol`` was met (False without ``tol``), ``method``
        ``"ritz"``.
    """
    products = check_int("products", products, minimum=1)
    keep = check_int("keep", keep, minimum=1)
    tol = None if tol is None else check_float("tol", tol, minimum=0.0)
    min_products = check_int("min_products", min_products, minimum=1)
    starts = _start_rows(op, init, seed)[:products]
    basis = torch.empty(products, op.num_params, device=op.device, dtype=op.dtype)  # Q, row by row
    images = torch.empty_like(basis)  # W = H Q
    size = 0

    def extend(vector: torch.Tensor) -> None:
        nonlocal size
        basis[size] = _orthonormalised(vector, basis[:size])
        images[size] = op.batched_matvec(basis[size : size + 1])[0]
        size += 1

    for start in starts:
        extend(start)
    chain = 0  # the Krylov chain grows from the first start: q ← H q_chain, orthogonalised
    pairs = None
    while True:
        if (tol is not None and size >= min_products) or size == products:
            pairs = _rayleigh_ritz(basis[:size], images[:size], keep)
            if size == products or pairs.relative_residual <= tol:
                break
        extend(images[chain])
        chain = size - 1
    coefficients = torch.from_numpy(pairs.coefficients).to(device=op.device, dtype=op.dtype)  # (m, k)
    theta_device = torch.from_numpy(pairs.values).to(device=op.device, dtype=op.dtype)
    ritz, products_of_ritz = coefficients.T @ basis[:size], coefficients.T @ images[:size]
    residuals = (products_of_ritz - theta_device[:, None] * ritz).norm(dim=1)
    stepped = products_of_ritz[0] / products_of_ritz[0].norm().clamp_min(torch.finfo(op.dtype).tiny)
    vectors = torch.cat([stepped[None], ritz[1:]])
    return EigenResult(
        eigenvalues=theta_device,
        eigenvectors=vectors / vectors.norm(dim=1, keepdim=True).clamp_min(torch.finfo(op.dtype).tiny),
        residuals=residuals,
        num_hvps=size,
        converged=tol is not None and pairs.relative_residual <= tol,
        method="ritz",
    )


@dataclass(frozen=True)
class _RitzPairs:
    """Rayleigh–Ritz on a basis Q ``(m, n)`` with images W = H Q: the top ``keep`` pairs in basis coordinates, each
    Ritz vector signed to lie on the side of the first basis vector (eigh's sign is arbitrary, and rounding could
    flip it between two runs of the same refresh)."""

    coefficients: np.ndarray  # (m, k): Ritz vector i is Qᵀ coefficients[:, i]
    values: np.ndarray  # (k,), descending
    relative_residual: float  # ‖H y₁ − θ₁ y₁‖ / |θ₁| of the top pair


def _rayleigh_ritz(q: torch.Tensor, w: torch.Tensor, keep: int) -> _RitzPairs:
    """The Ritz pairs of ``q`` and ``w`` (one host copy of QWᵀ, QQᵀ and WWᵀ), with the top pair's residual
    ‖Ws − θQs‖² = sᵀ(WWᵀ)s − 2θ·sᵀ(QWᵀ)s + θ²·sᵀ(QQᵀ)s taken from those matrices. They are accumulated in float64
    whatever the vectors' precision: the residual is a difference of terms ~(1/tol)² times larger than itself,
    and float32 sums over millions of parameters would leave it below their rounding."""
    cross, gram, images = to_host(_projections(q, w)).numpy()
    stiffness, gram = (cross + cross.T) / 2, (gram + gram.T) / 2
    gram_values, gram_vectors = np.linalg.eigh(gram)
    usable = gram_values > 1e-10 * gram_values.max()
    whitening = gram_vectors[:, usable] / np.sqrt(gram_values[usable])
    theta, rotation = np.linalg.eigh(whitening.T @ stiffness @ whitening)
    order = np.argsort(theta)[::-1][:keep]
    coefficients = whitening @ rotation[:, order]
    coefficients *= np.where(coefficients[0] < 0, -1.0, 1.0)  # each Ritz vector on the first start's side
    top, value = coefficients[:, 0], theta[order[0]]
    squared = top @ images @ top - 2 * value * (top @ stiffness @ top) + value**2 * (top @ gram @ top)
    relative = float(np.sqrt(max(squared, 0.0)) / max(abs(value), np.finfo(np.float64).tiny))
    return _RitzPairs(coefficients, theta[order].copy(), relative)


def _projections(q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """QWᵀ, QQᵀ and WWᵀ, ``(3, m, m)`` in float64 on the vectors' device, from ``q`` and ``w`` ``(m, n)``: one
    slice of ``_COLUMN_SLICE`` columns at a time, so the float64 temporaries are 2m slices, not 2m vectors."""
    total = torch.zeros(3, q.shape[0], q.shape[0], device=q.device, dtype=torch.float64)
    for start in range(0, q.shape[1], _COLUMN_SLICE):
        columns = slice(start, start + _COLUMN_SLICE)
        q_slice, w_slice = q[:, columns].double(), w[:, columns].double()
        total += torch.stack([q_slice @ w_slice.T, q_slice @ q_slice.T, w_slice @ w_slice.T])
    return total


def _orthonormalised(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``vector`` orthogonalised against the unit rows of ``basis`` ``(r, n)`` (two Gram–Schmidt passes) and
    normalised."""
    if len(basis):
        for _ in range(2):
            vector = vector - (basis @ vector) @ basis
    return vector / vector.norm().clamp_min(torch.finfo(vector.dtype).tiny)


def _start_rows(op: SymmetricOperator, init: torch.Tensor | None, seed: int) -> torch.Tensor:
    """Start rows ``(r, n)`` on ``op``'s device: ``init``'s rows as given (no host copy), or one seeded random row."""
    if init is None:
        return _start_block(op, None, 1, seed)
    _check_init(init, op.num_params)
    return init.detach().reshape(-1, op.num_params).to(device=op.device, dtype=op.dtype)


def _start_block(op: SymmetricOperator, init: torch.Tensor | None, rows: int, seed: int) -> torch.Tensor:
    """Orthonormal ``(rows, n)`` start vectors: from ``init`` when given, random (seeded) otherwise.

    One start from one given vector is that vector normalised on ``op``'s device (no host copy, sign kept).
    """
    n = op.num_params
    if init is not None:
        _check_init(init, n)
        if rows == 1 and init.dim() == 1:
            given = init.detach().to(device=op.device, dtype=op.dtype)
            return (given / given.norm().clamp_min(torch.finfo(given.dtype).tiny))[None]
    generator = torch.Generator().manual_seed(seed)
    random = torch.randn(rows, n, generator=generator, dtype=torch.float64)
    if init is not None:
        given = init.detach().reshape(-1, n).to(device="cpu", dtype=torch.float64)
        given = given / given.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        if rows == 1:
            block = given.sum(dim=0, keepdim=True)
            if block.norm() < 1e-8:  # the rows cancel: fall back to the first one
                block = given[:1]
        else:
            block = torch.cat([given[:rows], random[given.shape[0] :]])
    else:
        block = random
    q, r = torch.linalg.qr(block.T)
    block = (q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)).T  # QR may flip a column: keep each start's sign
    return block.to(device=op.device, dtype=op.dtype)


def _check_init(init: torch.Tensor, n: int) -> None:
    if not isinstance(init, torch.Tensor) or init.dim() not in (1, 2) or init.shape[-1] != n:
        shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init must have shape ({n},) or (r, {n}), got {shape}")


def _lanczos(
    op: SymmetricOperator, k: int, tol: float, max_iter: int, start: torch.Tensor, storage: torch.device
) -> EigenResult:
    """Thick-restart Lanczos; the basis lives on ``storage``. Memory beyond the basis: a few parameter-sized
    vectors (the restart rotates the basis in place, a slice of parameters at a time)."""
    n = op.num_params
    size_limit = min(n, max(2 * k + 1, 20))
    keep = min(size_limit - 1, k + (size_limit - k) // 2)
    basis = torch.empty(size_limit, n, device=storage, dtype=op.dtype)
    projected = torch.zeros(size_limit, size_limit, dtype=torch.float64)
    basis[0] = start[0].to(storage)
    size = 1
    generator = torch.Generator().manual_seed(12345)
    hvps = 0
    while True:
        current = basis[:size]
        product = op.batched_matvec(basis[size - 1 : size].to(op.device))[0].to(storage)
        hvps += 1
        coefficients = current @ product
        product.addmv_(current.T, coefficients, alpha=-1)  # in place: no parameter-sized temporary
        correction = current @ product  # second Gram–Schmidt pass keeps the basis orthogonal in float32
        product.addmv_(current.T, correction, alpha=-1)
        column = to_host(coefficients + correction)
        projected[:size, size - 1] = column
        projected[size - 1, :size] = column
        beta = float(product.norm())
        theta, vectors = torch.linalg.eigh(projected[:size, :size])
        order = torch.argsort(theta, descending=True)
        theta, vectors = theta[order], vectors[:, order]
        residuals = beta * vectors[size - 1].abs()
        found = min(k, size)
        scale = theta[:found].abs().clamp_min(torch.finfo(torch.float64).tiny)
        converged = found == k and bool((residuals[:k] <= tol * scale).all())
        if converged or hvps >= max_iter or (size == n and found == k):
            _rotate_in_place(basis, vectors[:, :k].T.to(device=storage, dtype=op.dtype))
            ritz = basis[:k].to(op.device, copy=True)
            ritz /= ritz.norm(dim=1, keepdim=True)
            return EigenResult(theta[:k].clone(), ritz, residuals[:k].clone(), hvps, converged or size == n, "lanczos")
        breakdown = beta <= 1e-12 * max(1.0, float(theta.abs().max()))
        if breakdown:  # an invariant subspace: continue from a fresh direction orthogonal to it
            product = torch.randn(n, generator=generator, dtype=torch.float64).to(device=storage, dtype=op.dtype)
            for _ in range(2):
                product = product - (current @ product) @ current
            beta = float(product.norm())
        if size < size_limit:
            torch.div(product, beta, out=basis[size])
            size += 1
            continue
        # thick restart: keep the best `keep` Ritz vectors, then continue with the residual direction
        _rotate_in_place(basis, vectors[:, :keep].T.to(device=storage, dtype=op.dtype))
        torch.div(product, beta, out=basis[keep])
        projected.zero_()
        projected[:keep, :keep] = torch.diag(theta[:keep])
        size = keep + 1


#: Parameters per slice when rows of the basis are combined slice by slice (the restart's rotation, the float64
#: projections): bounds their temporaries to rows × this many values.
_COLUMN_SLICE = 1 << 20


def _rotate_in_place(basis: torch.Tensor, rotation: torch.Tensor) -> None:
    """``basis[:r] = rotation @ basis[:m]`` for ``rotation`` ``(r, m)``, r ≤ m, one slice of columns at a time, so
    the temporary is ``r × _COLUMN_SLICE`` values instead of r parameter-sized vectors."""
    rows, used = rotation.shape
    for start in range(0, basis.shape[1], _COLUMN_SLICE):
        columns = slice(start, start + _COLUMN_SLICE)
        basis[:rows, columns] = rotation @ basis[:used, columns]


def _subspace_iteration(op: SymmetricOperator, k: int, tol: float, max_iter: int, start: torch.Tensor) -> EigenResult:
    block = start
    hvps = 0
    for iteration in range(1, max_iter + 1):
        products = op.batched_matvec(block)
        hvps += k
        gram = to_host(block @ products.T)
        theta, rotation = torch.linalg.eigh((gram + gram.T) / 2)
        order = torch.argsort(theta.abs(), descending=True)
        theta, rotation = theta[order], rotation[:, order].to(device=op.device, dtype=op.dtype)
        block, products = rotation.T @ block, rotation.T @ products
        theta_device = theta.to(device=op.device, dtype=op.dtype)
        residuals = to_host((products - theta_device[:, None] * block).norm(dim=1))
        converged = bool((residuals <= tol * theta.abs().clamp_min(torch.finfo(torch.float64).tiny)).all())
        if converged or iteration == max_iter:
            return EigenResult(theta, block, residuals, hvps, converged, "power")
        block = torch.linalg.qr(products.T).Q.T
    raise AssertionError("unreachable: the loop returns at max_iter")
