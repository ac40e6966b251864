"""The gradient of the top Hessian eigenvalue: ∇θλ1 = ∇θ(v1ᵀH(θ)v1), a third derivative of the loss.

For a simple eigenvalue λ1 with unit eigenvector v1, dλ1 = v1ᵀ(dH)v1 (the eigenvector's own change drops out), so
∇θλ1 is the loss's third derivative contracted with v1 twice: ∇³L[v1, v1, ·]. It says which way the weights must
move to flatten the sharpest direction: a step Δθ changes λ1 by ⟨Δθ, ∇θλ1⟩ to first order. Where λ1 and λ2 meet,
λ1 is not differentiable (it is the larger of two crossing branches) and the gradient does not exist; near such a
point it changes on the scale of the gap, so ``eigenvalue_gradient`` measures the gap and warns or fails there.

Like the other probes it takes ``(model, loss_fn, data)`` with either loss form (``workbench.losses``) and leaves
the model as it found it (eval mode while measuring, nothing in ``.grad``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from workbench._checks import check_choice, check_float, check_int
from workbench.curvature import HessianOperator, top_eigenpairs
from workbench.inputs import Data, LossFn

#: What ``eigenvalue_gradient`` does when λ1 is not separated from λ2.
ON_DEGENERATE = ("warn", "raise", "ignore")
#: Lanczos tolerance of the λ2 solve (at most): the gap needs a few digits, not ``tol``'s.
GAP_TOL = 1e-3


class DegenerateEigenvalueWarning(RuntimeWarning):
    """λ1 is (nearly) equal to λ2: ∇θλ1 does not exist there, and the value returned is that of one branch."""


@dataclass(frozen=True)
class EigenvalueGradient:
    """λ1, v1 and ∇θλ1 at the model's current parameters.

    Attributes:
        eigenvalue: λ1, the algebraically largest Hessian eigenvalue (loss units per squared parameter unit).
        eigenvector: v1, unit, flat ``(n,)`` in the order of the probed parameters (its sign is arbitrary; the
            gradient does not depend on it).
        gradient: ∇θλ1 = ∇θ(v1ᵀH(θ)v1), flat ``(n,)`` (loss units per cubed parameter unit).
        second_eigenvalue: λ2, the next eigenvalue, to ``GAP_TOL`` (found below λ1 − σ, σ = 2|λ1| + 1, only: a
            λ2 further down, where negative curvature dominates, shows as that bound).
        relative_gap: (λ1 − λ2) / |λ1|, ≥ 0 (inf when λ1 = 0 with a positive gap).
        separated: whether ``relative_gap`` reached ``min_relative_gap``: where it did not, ∇θλ1 does not exist
            (or changes on the scale of the gap) and ``gradient`` belongs to whichever branch Lanczos returned.
        residual: ‖H v1 − λ1 v1‖, the eigenvector's accuracy (the gradient's error is about 2·residual/gap times
            the third derivative's size).
        converged: whether both Lanczos solves reached their tolerance.
        num_hvps: Hessian-vector products taken by both Lanczos solves; the gradient adds one third-order product
            (about 2 HVPs).
    """

    eigenvalue: float
    eigenvector: torch.Tensor
    gradient: torch.Tensor
    second_eigenvalue: float
    relative_gap: float
    separated: bool
    residual: float
    converged: bool
    num_hvps: int


def eigenvalue_gradient(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    params: Iterable[torch.nn.Parameter] | None = None,
    init: torch.Tensor | None = None,
    tol: float = 1e-5,
    max_iter: int = 500,
    min_relative_gap: float = 1e-2,
    on_degenerate: str = "warn",
    seed: int = 0,
    hvp: str = "auto",
) -> EigenvalueGradient:
    """λ1, v1 and ∇θλ1 of the loss's Hessian on ``data`` (see the module docstring).

    λ1 and v1 come from Lanczos (``top_eigenpairs``), λ2 from a second Lanczos run on H with v1 deflated (at
    tolerance ``max(tol, GAP_TOL)``: the gap needs a few digits), which finds a repeated λ1 too; then ∇θλ1 from one
    third-order product (``HessianOperator.quadratic_form_gradient``) at v1.

    Args:
        model, loss_fn, data, params, hvp: as for ``workbench.probes.lambda_max``.
        init: a warm start, ``(n,)`` or ``(r, n)``: row 0 starts λ1's solve (e.g. the previous probe's v1), row 1
            (if given) λ2's; without one the solves start from random vectors drawn with ``seed``.
        tol: Lanczos tolerance on the relative residual, ≥ 0. The gradient's error grows with v1's error
            (residual / gap), so it is tighter than the training probe's 1e-3.
        max_iter: most Lanczos steps (HVPs), ≥ 1.
        min_relative_gap: λ1 counts as separated from λ2 when (λ1 − λ2) / |λ1| ≥ this, ≥ 0.
        on_degenerate: when it is not: ``"warn"`` (a ``DegenerateEigenvalueWarning``, the result still returned),
            ``"raise"`` (a ValueError) or ``"ignore"`` (only ``separated`` says so).
        seed: seed of the start vectors ``init`` does not give (λ2's solve uses ``seed + 1``).

    Raises:
        ValueError: for an argument out of range (named), an ``init`` of the wrong shape, a model with a single
            parameter (no λ2 to compare with), or, with ``on_degenerate="raise"``, when λ1 is not separated from λ2.
    """
    tol = check_float("tol", tol, minimum=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    min_relative_gap = check_float("min_relative_gap", min_relative_gap, minimum=0.0)
    check_choice("on_degenerate", on_degenerate, ON_DEGENERATE)
    op = HessianOperator(model, loss_fn, data, params=params, hvp=hvp)
    if op.num_params < 2:
        raise ValueError("eigenvalue_gradient needs at least 2 parameters (λ1 is compared with λ2)")
    starts = _warm_starts(init, op.num_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # convergence is reported in the result
        top = top_eigenpairs(op, k=1, tol=tol, max_iter=max_iter, init=starts[0], seed=seed)
        first, vector = float(top.eigenvalues[0]), top.eigenvectors[0]
        deflated = _Deflated(op, vector, shift=2.0 * abs(first) + 1.0)
        below = top_eigenpairs(deflated, k=1, tol=max(tol, GAP_TOL), max_iter=max_iter, init=starts[1], seed=seed + 1)
    second = float(below.eigenvalues[0])
    gap = first - second
    relative_gap = max(gap, 0.0) / abs(first) if first != 0 else (math.inf if gap > 0 else 0.0)
    separated = relative_gap >= min_relative_gap and gap > 0
    if not separated and on_degenerate != "ignore":
        message = (
            f"λ1 = {first:.6g} is not separated from λ2 = {second:.6g} (relative gap {relative_gap:.2e} < "
            f"min_relative_gap = {min_relative_gap:g}): the gradient of λ1 does not exist where the eigenvalues meet"
        )
        if on_degenerate == "raise":
            raise ValueError(message)
        warnings.warn(message, DegenerateEigenvalueWarning, stacklevel=2)
    return EigenvalueGradient(
        eigenvalue=first,
        eigenvector=vector,
        gradient=op.quadratic_form_gradient(vector),
        second_eigenvalue=second,
        relative_gap=relative_gap,
        separated=separated,
        residual=float(top.residuals[0]),
        converged=top.converged and below.converged,
        num_hvps=top.num_hvps + below.num_hvps,
    )


class _Deflated:
    """H − σ·v1v1ᵀ (a ``SymmetricOperator``): v1 drops to λ1 − σ ≤ −|λ1| − 1, so the top of what is left is λ2, also
    when λ2 = λ1 (a single Krylov sequence started near v1 would see a repeated eigenvalue only once)."""

    def __init__(self, op: HessianOperator, vector: torch.Tensor, shift: float) -> None:
        self.op = op
        self.vector = vector
        self.shift = shift
        self.num_params, self.dtype, self.device = op.num_params, op.dtype, op.device

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        products = self.op.batched_matvec(vectors)
        return products - self.shift * (vectors.to(self.vector) @ self.vector)[:, None] * self.vector


def _warm_starts(init: torch.Tensor | None, size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The warm starts of λ1's and λ2's solves: ``init``'s first row and, if it has one, its second."""
    if init is None:
        return None, None
    if not isinstance(init, torch.Tensor) or init.dim() not in (1, 2) or init.shape[-1] != size:
        shape = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init must have shape ({size},) or (r, {size}), got {shape}")
    rows = init.detach().reshape(-1, size)
    return rows[0], rows[1] if rows.shape[0] > 1 else None
