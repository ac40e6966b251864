"""Sharpness of a model's loss at its current parameters θ: λ1, tr(H), worst-case and average-case loss increase.

Every probe takes ``(model, loss_fn, data)``, with ``data`` one batch or a list of batches (the loss is then the
size-weighted mean over all their samples), and ``loss_fn`` an ``(outputs, targets)`` loss for ``(inputs, targets)``
batches or ``workbench.batch_loss(fn)`` for a ``fn(model, batch)`` loss on batches of any structure
(``workbench.losses``); it returns plain data. Every probe
leaves the model as it found it: parameters and buffers bit for bit (perturbations are applied functionally,
never in place), train/eval flags (the model is evaluated in eval mode, so BatchNorm uses and keeps its running
statistics), and nothing in ``.grad`` (gradients come from ``torch.autograd.grad``).

Radii ρ are Euclidean norms in parameter space (for the adaptive probe: of δ / (|θ| + η), dimensionless).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from workbench._checks import check_float, check_int
from workbench.curvature import EigenResult, HessianOperator, TraceResult, hessian_trace, top_eigenpairs
from workbench.curvature.random import unit_gaussian
from workbench.inputs import Data, LossFn
from workbench.probes.perturbed import DEFAULT_CHUNK_SIZE, PerturbedLoss

#: ASAM's default η (Kwon et al. 2021, the offset in the scale |θ| + η that keeps zero weights perturbable).
ASAM_ETA = 0.01


@dataclass(frozen=True)
class WorstCaseSharpness:
    """max over the ρ-ball of L(θ + δ) − L(θ), estimated by projected gradient ascent.

    The estimate is the loss increase at a feasible δ, so it is a lower bound of the true maximum.

    Attributes:
        value: the largest loss increase found, ≥ 0 since δ = 0 is feasible (units of the loss).
        one_step: the increase after the first ascent step, δ = ρ·g/‖g‖ (adaptive: ASAM's ε): SAM's estimate.
        history: the increase after each ascent step, ``steps`` floats.
        base_loss: L(θ).
        perturbation: ``(n,)`` the δ that achieved ``value`` (zeros when no step increased the loss), in
            parameter units, in the order of the probed parameters.
        rho: the radius of the ball.
        adaptive: False for the Euclidean ball ‖δ‖ ≤ ρ, True for ASAM's ‖δ / (|θ| + η)‖ ≤ ρ.
        num_gradients: loss gradients evaluated (one forward and backward pass over the data each).
    """

    value: float
    one_step: float
    history: tuple[float, ...]
    base_loss: float
    perturbation: torch.Tensor
    rho: float
    adaptive: bool
    num_gradients: int


@dataclass(frozen=True)
class AverageCaseSharpness:
    """E L(θ + δ) − L(θ) over δ uniform on the sphere ‖δ‖ = ρ, by Monte Carlo.

    For a quadratic with Hessian A the exact value is ½ρ²·tr(A)/n.

    Attributes:
        value: the Monte Carlo mean (units of the loss).
        stderr: its standard error (sample standard deviation / √num_samples).
        base_loss: L(θ).
        rho: the radius of the sphere.
        num_samples: random directions δ drawn.
        antithetic: whether each δ was paired with −δ (2 loss evaluations per direction).
    """

    value: float
    stderr: float
    base_loss: float
    rho: float
    num_samples: int
    antithetic: bool


def lambda_max(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    params: Iterable[torch.nn.Parameter] | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    init: torch.Tensor | None = None,
    seed: int = 0,
    hvp: str = "auto",
) -> EigenResult:
    """λ1, the largest Hessian eigenvalue, and its unit eigenvector, by ``top_eigenpairs`` (Lanczos).

    Args:
        params: the parameters H is taken with respect to (default: all that require grad).
        tol, max_iter, init, seed: as in ``top_eigenpairs`` (``init``: the previous eigenvector, a warm start).
        hvp: HVP engine of the ``HessianOperator`` (``"auto"``, ``"graph"`` or ``"func"``).

    Returns:
        An ``EigenResult`` with k = 1: ``eigenvalues[0]`` is λ1 (units of the loss per squared parameter unit).
    """
    op = HessianOperator(model, loss_fn, data, params=params, hvp=hvp)
    return top_eigenpairs(op, k=1, tol=tol, max_iter=max_iter, init=init, seed=seed)


def trace_of_hessian(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    params: Iterable[torch.nn.Parameter] | None = None,
    method: str = "hutch++",
    num_samples: int = 99,
    seed: int = 0,
    hvp: str = "auto",
) -> TraceResult:
    """tr(H), estimated by ``hessian_trace`` (Hutch++ by default) with ``num_samples`` HVPs and a standard error."""
    op = HessianOperator(model, loss_fn, data, params=params, hvp=hvp)
    return hessian_trace(op, method=method, num_samples=num_samples, seed=seed)


def worst_case_sharpness(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    rho: float,
    steps: int = 10,
    step_size: float | None = None,
    params: Iterable[torch.nn.Parameter] | None = None,
    seed: int = 0,
) -> WorstCaseSharpness:
    """max_{‖δ‖≤ρ} L(θ + δ) − L(θ) by projected normalised gradient ascent from δ = 0.

    Each step is δ ← Π(δ + s·∇L(θ+δ)/‖∇L(θ+δ)‖), Π the projection onto the ball, so the first step is SAM's
    perturbation ρ·g/‖g‖ (``one_step``) and later steps climb towards the worst δ on the sphere. Where the
    gradient vanishes (θ a stationary point) the step takes a random unit direction drawn with ``seed``.

    Args:
        rho: radius of the ball, > 0 (parameter units).
        steps: ascent steps, ≥ 1; each costs one gradient. See benchmarks/RESULTS.md ("Worst-case sharpness
            steps") for how the estimate grows with steps on a small network.
        step_size: s, the length of each step (default ρ, which makes the first step SAM's).
        params: the parameters δ perturbs (default: all that require grad).
        seed: seed of the random direction used where the gradient is zero.

    Raises:
        ValueError: for ρ ≤ 0, steps < 1 or step_size ≤ 0.
    """
    rho = check_float("rho", rho, minimum=0.0, min_inclusive=False)
    objective = PerturbedLoss(model, loss_fn, data, params=params)
    return _projected_ascent(objective, None, rho, steps, step_size, seed)


def adaptive_worst_case_sharpness(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    rho: float,
    eta: float = ASAM_ETA,
    steps: int = 10,
    step_size: float | None = None,
    params: Iterable[torch.nn.Parameter] | None = None,
    seed: int = 0,
) -> WorstCaseSharpness:
    """ASAM-style adaptive worst-case sharpness: max L(θ + δ) − L(θ) over ‖δ / (|θ| + η)‖ ≤ ρ.

    With T = diag(|θ| + η) and δ = T·u, this is the Euclidean problem in u (‖u‖ ≤ ρ) for the gradient
    T·∇L, solved by the same ascent as ``worst_case_sharpness``; the first step is ASAM's
    ε = ρ·T²g / ‖T g‖ (Kwon et al. 2021). The scale is invariant to rescaling a layer's weights, which
    the Euclidean ball is not; radii are therefore much larger (ASAM trains with ρ = 0.5 to 2).

    Args:
        rho: radius of the ball in the scaled coordinates u, > 0 (dimensionless).
        eta: η ≥ 0, added to |θ| so that zero weights can move (ASAM's default 0.01).
        steps, step_size, params, seed: as in ``worst_case_sharpness`` (``step_size`` in u's units).

    Raises:
        ValueError: for ρ ≤ 0, η < 0, steps < 1 or step_size ≤ 0, or η = 0 with a zero weight.
    """
    rho = check_float("rho", rho, minimum=0.0, min_inclusive=False)
    eta = check_float("eta", eta, minimum=0.0)
    objective = PerturbedLoss(model, loss_fn, data, params=params)
    scale = objective.base.abs() + eta
    return _projected_ascent(objective, scale, rho, steps, step_size, seed)


def average_case_sharpness(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    rho: float,
    num_samples: int = 32,
    antithetic: bool = True,
    params: Iterable[torch.nn.Parameter] | None = None,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    vectorize: bool | None = None,
) -> AverageCaseSharpness:
    """E L(θ + δ) − L(θ) for δ uniform on the sphere ‖δ‖ = ρ, by Monte Carlo with a standard error.

    With ``antithetic`` each sample is ½[L(θ+δ) + L(θ−δ)] − L(θ): the gradient term cancels exactly, which
    removes most of the variance at small ρ (for a quadratic only ½δᵀAδ remains). The perturbed losses are
    evaluated ``chunk_size`` points at a time, as in ``loss_slice_1d``; the directions are drawn one at a time from
    ``seed`` so the result does not depend on ``chunk_size`` (beyond float rounding).

    Args:
        rho: radius of the sphere, > 0 (parameter units).
        num_samples: random directions, ≥ 2 (the standard error says whether they suffice).
        antithetic: pair every δ with −δ (default True).
        params: the parameters δ perturbs (default: all that require grad).
        seed: seed of the directions.
        chunk_size: points evaluated together, ≥ 1 (memory grows with it when vectorised).
        vectorize: as in ``loss_slice_1d`` (None: ``vmap`` off the CPU, one point at a time on it).

    Raises:
        ValueError: for ρ ≤ 0, num_samples < 2 or chunk_size < 1.
    """
    rho = check_float("rho", rho, minimum=0.0, min_inclusive=False)
    num_samples = check_int("num_samples", num_samples, minimum=2)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    objective = PerturbedLoss(model, loss_fn, data, params=params)
    generator = torch.Generator().manual_seed(seed)
    chunks = _sphere_chunks(objective, rho, num_samples, antithetic, chunk_size, generator)
    losses, _ = objective.losses(chunks, vectorize=vectorize)
    base_loss, perturbed = losses[0], losses[1:]
    if antithetic:  # chunks hold [δ₁..δc, −δ₁..−δc]; pair each δ with its −δ
        pairs = [chunk.reshape(2, -1).mean(dim=0) for chunk in torch.split(perturbed, 2 * chunk_size)]
        samples = torch.cat(pairs) - base_loss
    else:
        samples = perturbed - base_loss
    return AverageCaseSharpness(
        value=float(samples.mean()),
        stderr=float(samples.std(unbiased=True)) / math.sqrt(num_samples),
        base_loss=float(base_loss),
        rho=rho,
        num_samples=num_samples,
        antithetic=antithetic,
    )


def _sphere_chunks(
    objective: PerturbedLoss,
    rho: float,
    num_samples: int,
    antithetic: bool,
    chunk_size: int,
    generator: torch.Generator,
) -> Iterator[torch.Tensor]:
    """The zero offset, then chunks of ρ-scaled unit directions (each followed by its negatives if antithetic)."""
    n, like = objective.num_params, objective.base
    yield torch.zeros(1, n, device=like.device, dtype=like.dtype)
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        deltas = rho * torch.cat([unit_gaussian(1, n, generator, like) for _ in range(count)])
        yield torch.cat([deltas, -deltas]) if antithetic else deltas


def _projected_ascent(
    objective: PerturbedLoss,
    scale: torch.Tensor | None,
    rho: float,
    steps: int,
    step_size: float | None,
    seed: int,
) -> WorstCaseSharpness:
    """Normalised gradient ascent on u with δ = scale·u (scale None: δ = u), projected onto ‖u‖ ≤ ρ."""
    steps = check_int("steps", steps, minimum=1)
    size = rho if step_size is None else check_float("step_size", step_size, minimum=0.0, min_inclusive=False)
    if scale is not None and not bool((scale > 0).all()):
        raise ValueError("eta must be > 0 when some probed weight is exactly zero (the scale |θ| + η would be 0)")
    generator = torch.Generator().manual_seed(seed)
    zeros = torch.zeros_like(objective.base)
    base_loss, gradient = objective.loss_and_gradient(zeros)
    u = zeros
    best_value, best_delta = 0.0, zeros
    history: list[float] = []
    for step in range(steps):
        ascent = gradient if scale is None else gradient * scale
        norm = ascent.norm()
        if float(norm) == 0.0:
            ascent, norm = unit_gaussian(1, objective.num_params, generator, u)[0], 1.0
        u = u + (size / norm) * ascent
        u = u * min(1.0, rho / float(u.norm()))
        delta = u if scale is None else u * scale
        if step < steps - 1:
            loss, gradient = objective.loss_and_gradient(delta)
        else:
            loss = objective.loss(delta)
        history.append(loss - base_loss)
        if history[-1] > best_value:
            best_value, best_delta = history[-1], delta
    return WorstCaseSharpness(
        value=best_value,
        one_step=history[0],
        history=tuple(history),
        base_loss=base_loss,
        perturbation=best_delta.detach(),
        rho=rho,
        adaptive=scale is not None,
        num_gradients=steps,
    )
