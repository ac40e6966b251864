"""The SAM family's rules as pure functions on flat vectors: ascent perturbations and descent corrections.

Every function takes and returns tensors of shape ``(n,)`` (n = number of parameters, any n ≥ 1, so the same
rules run on a 2-D toy landscape and on a network's flattened weights) and is branch-free: values never leave
the device, nothing synchronises a GPU. Notation (as in ``shared/ALGORITHMS.md``): g the mini-batch gradient at
θ, ĝ = g/‖g‖, v a unit eigenvector of the Hessian (its sign is arbitrary unless a rule says how it is fixed),
ρ the perturbation radius, α a mixing weight. ρ, α and η may be floats or per-coordinate tensors ``(n,)`` (an
optimizer's per-parameter-group settings, expanded by ``WrappedOptimizer.group_values``). A zero gradient gives a
zero unit vector (no NaN).
"""

from __future__ import annotations

import math

import torch


def unit(vector: torch.Tensor) -> torch.Tensor:
    """``vector / ‖vector‖``, shape ``(n,)``; the zero vector maps to itself."""
    return vector / vector.norm().clamp_min(torch.finfo(vector.dtype).tiny)


def cosine(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """cos∠(first, second) as a 0-dim tensor; NaN when either vector is zero (the angle is undefined)."""
    norms = first.norm() * second.norm()
    return torch.where(norms > 0, torch.dot(first, second) / norms, torch.full_like(norms, math.nan))


def angle_degrees(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """∠(first, second) in degrees, in [0, 180], as a 0-dim tensor; NaN when either vector is zero."""
    return torch.rad2deg(torch.arccos(cosine(first, second).clamp(-1.0, 1.0)))


def orientation_sign(eigenvector: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """+1 if ⟨reference, v⟩ ≥ 0 else −1 (0-dim, v's dtype): multiplying v by it orients v along ``reference``."""
    return torch.where(torch.dot(reference, eigenvector) >= 0, 1.0, -1.0).to(eigenvector.dtype)


def sam_perturbation(gradient: torch.Tensor, *, rho: float | torch.Tensor) -> torch.Tensor:
    """SAM (Foret et al., 2021): ε = ρ·ĝ, shape ``(n,)``, ‖ε‖ = ρ (0 where g = 0)."""
    return rho * unit(gradient)


def asam_perturbation(
    gradient: torch.Tensor,
    weights: torch.Tensor,
    *,
    rho: float | torch.Tensor,
    eta: float | torch.Tensor,
    adaptive: torch.Tensor | None = None,
    norm_offset: float = 0.0,
) -> torch.Tensor:
    """ASAM (Kwon et al., 2021): ε = ρ·T²g / (‖T g‖ + c) with T = diag(|θ| + η), shape ``(n,)``.

    Args:
        gradient: g at θ, ``(n,)``.
        weights: θ, ``(n,)``.
        rho: radius of the adaptive ball ‖T⁻¹ε‖ ≤ ρ.
        eta: η ≥ 0, keeps weights at zero perturbable.
        adaptive: optional boolean mask ``(n,)``; coordinates where it is False use T = 1 (the published code
            scales only parameters named "weight", leaving biases at T = 1). ``None``: every coordinate scaled.
        norm_offset: c ≥ 0 added to ‖T g‖ before dividing. 0 (default): ‖T⁻¹ε‖ = ρ exactly (a zero T g still
            gives ε = 0); davda54/sam's element-wise ASAM uses η = 0 and c = 1e-12.
    """
    scale = weights.abs() + eta
    if adaptive is not None:
        scale = torch.where(adaptive, scale, torch.ones_like(scale))
    scaled = scale * gradient
    return rho * scale * (scaled / (scaled.norm() + norm_offset).clamp_min(torch.finfo(scaled.dtype).tiny))


def eigen_sam_perturbation(
    gradient: torch.Tensor, eigenvector: torch.Tensor, *, rho: float | torch.Tensor, alpha: float | torch.Tensor
) -> torch.Tensor:
    """Eigen-SAM (Luo et al.): ε = ρ·[ĝ + α·sign(⟨g, v⟩)·(v − ⟨ĝ, v⟩ĝ)], shape ``(n,)``, not renormalised.

    The added part is v's component orthogonal to ĝ, signed to point uphill; the sign makes ε the same for v
    and −v. ‖ε‖ = ρ·√(1 + α²·sin²∠(g, v)) for a unit v. sign(0) = 0: an eigenvector orthogonal to g adds nothing.
    """
    direction = unit(gradient)
    orthogonal = eigenvector - torch.dot(direction, eigenvector) * direction
    return rho * (direction + alpha * torch.sign(torch.dot(gradient, eigenvector)) * orthogonal)


def xsam_direction(
    adversarial_gradient: torch.Tensor,
    eigenvector: torch.Tensor,
    *,
    alpha: float | torch.Tensor,
    angle_gate: bool = False,
    normalize: bool = True,
) -> torch.Tensor:
    """X-SAM's corrected descent direction g̃, shape ``(n,)``, for g_adv = ∇L(θ + ε) and a unit v.

    With ĝa = g_adv/‖g_adv‖ and c = ⟨ĝa, v⟩ = cos∠(g_adv, v), the published correction is
    g̃ = ĝa − α·sign(⟨g_adv, v⟩)·c·v = ĝa − α·|c|·v. Its v-component is c − α|c|: c(1 − α) when
    ∠(g_adv, v) ≤ 90° (α = 1 removes it, α = 2 reflects it) and c(1 + α) when the angle exceeds 90°. The result
    flips with the sign of v; the caller orients v (see ``XSAM``).

    Args:
        alpha: α, in [0, 2] for the documented shrink / remove / reflect readings.
        angle_gate: True applies the correction only where ∠(g_adv, v) ≤ 90° (c ≥ 0); False (published) always.
        normalize: True (published) returns g̃ built from the unit ĝa, so ‖g̃‖ ≤ 1 whatever ‖g_adv‖; False returns
            ‖g_adv‖·g̃ = g_adv − α·|⟨g_adv, v⟩|·v, the same correction on SAM's own gradient (α = 0 is SAM).
    """
    direction = unit(adversarial_gradient)
    projection = torch.dot(direction, eigenvector)
    weight = alpha * projection.abs()
    if angle_gate:
        weight = torch.where(projection >= 0, weight, torch.zeros_like(weight))
    corrected = direction - weight * eigenvector
    return corrected if normalize else adversarial_gradient.norm() * corrected
