"""Analytic 2-D loss landscapes with exact gradients and Hessians, for teaching SAM geometry.

Every landscape evaluates hand-derived torch formulas on a point θ of shape ``(2,)`` or on a batch of points of
shape ``(m, 2)`` (a grid for contour plots): ``value`` returns ``()`` or ``(m,)``, ``gradient`` the shape of θ,
``hessian`` ``(2, 2)`` or ``(m, 2, 2)``, ``third_derivative`` ``(2, 2, 2)`` or ``(m, 2, 2, 2)``. The formulas are
smooth torch expressions, so the same ``value`` also drives the ``workbench.optim`` optimizers through autograd
(tests check formula against autograd). Coordinates and losses are dimensionless; curvatures (Hessian eigenvalues)
are in loss units per unit θ².

From the third derivative follows ``top_eigenvalue_gradient``, ∇λ1 = ∇³L[v1, v1, ·]: the direction in which the
sharpness λ1 grows fastest, and (with a step Δθ) ⟨Δθ, ∇λ1⟩, the step's first-order change of λ1.

``make_landscape(name, **params)`` builds one from the registry ``LANDSCAPES``; each class documents its
parameters, and ``minima`` lists its local minima with their Hessian eigenvalues (λ1 the sharpness).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workbench._checks import check_choice, check_float

Bounds = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Minimum:
    """A local minimum of a landscape.

    Attributes:
        name: short label ("sharp", "flat", ...).
        location: θ*, as (x, y).
        value: L(θ*).
        eigenvalues: the Hessian's eigenvalues at θ*, (λ1, λ2) with λ1 ≥ λ2 > 0; λ1 is the sharpness.
    """

    name: str
    location: tuple[float, float]
    value: float
    eigenvalues: tuple[float, float]

    @property
    def sharpness(self) -> float:
        """λ1, the top Hessian eigenvalue at the minimum."""
        return self.eigenvalues[0]


class Landscape(ABC):
    """A smooth loss L: R² → R with exact gradient and Hessian (see the module docstring for shapes).

    Attributes:
        name: the registry name.
        bounds: the view box ((x_min, x_max), (y_min, y_max)) that contains the interesting region.
        minima: the local minima, sharpest first.
    """

    name: str
    bounds: Bounds
    minima: tuple[Minimum, ...]

    @abstractmethod
    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ): ``(2,)`` → ``()``, ``(m, 2)`` → ``(m,)``."""

    @abstractmethod
    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∇L(θ), the shape of θ."""

    @abstractmethod
    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """∇²L(θ): ``(2,)`` → ``(2, 2)``, ``(m, 2)`` → ``(m, 2, 2)``."""

    @abstractmethod
    def third_derivative(self, theta: torch.Tensor) -> torch.Tensor:
        """∇³L(θ), entries ∂³L/∂θi∂θj∂θk (symmetric): ``(2,)`` → ``(2, 2, 2)``, ``(m, 2)`` → ``(m, 2, 2, 2)``."""

    def top_eigenvalue_gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """∇λ1(θ) = ∇³L[v1, v1, ·] (v1 the unit top eigenvector of ∇²L(θ)), the shape of θ (loss units per unit θ³).

        Where λ1 = λ2 (to 1e-9 relative) the gradient exists only if every slice ∇³L[·, ·, k] is a multiple of the
        identity (then it is their diagonal, e.g. 0 on an isotropic quadratic); elsewhere on such points the result
        is NaN: λ1 has a kink there, and no arrow would be honest.
        """
        eigenvalues, eigenvectors = torch.linalg.eigh(self.hessian(theta))
        top = eigenvectors[..., :, -1]
        third = self.third_derivative(theta)
        gradient = torch.einsum("...ijk,...i,...j->...k", third, top, top)
        scale = eigenvalues.abs().amax(-1).clamp_min(torch.finfo(theta.dtype).tiny)
        degenerate = eigenvalues[..., 1] - eigenvalues[..., 0] <= _DEGENERATE_GAP * scale
        slices = third.movedim(-1, -3)  # (..., k, i, j)
        isotropic = (slices[..., 0, 0] - slices[..., 1, 1]).abs().amax(-1) + slices[..., 0, 1].abs().amax(-1) <= (
            _DEGENERATE_GAP * (slices.abs().flatten(-3).amax(-1) + 1.0)
        )
        defined = ~degenerate | isotropic
        gradient = torch.where(degenerate.unsqueeze(-1), slices[..., 0, 0], gradient)
        return torch.where(defined.unsqueeze(-1), gradient, torch.full_like(gradient, math.nan))

    def describe(self) -> str:
        """One line naming the landscape and its minima with their sharpness, for legends and narrative."""
        parts = [f"{m.name} at ({m.location[0]:.2f}, {m.location[1]:.2f}), λ1 = {m.sharpness:.3g}" for m in self.minima]
        return f"{self.name}: " + "; ".join(parts)

    def _find_minimum(self, name: str, guess: Sequence[float]) -> Minimum:
        """Refine ``guess`` to a minimum by Newton's method with the exact Hessian and describe it.

        Raises:
            ValueError: when Newton's method does not converge or ends where the Hessian is not positive definite
                (the landscape's parameters moved or merged the minimum).
        """
        theta = torch.tensor(guess, dtype=torch.float64)
        tolerance = 8 * torch.finfo(torch.float64).eps
        for _ in range(_NEWTON_ITERATIONS):
            step = torch.linalg.solve(self.hessian(theta), self.gradient(theta))
            theta = theta - step
            if float(step.norm()) <= tolerance * (1.0 + float(theta.norm())):
                break
        else:
            raise ValueError(f"{self.name}: no {name} minimum near {tuple(guess)} with these parameters")
        eigenvalues = torch.linalg.eigvalsh(self.hessian(theta))
        if float(eigenvalues[0]) <= 0:
            raise ValueError(f"{self.name}: the {name} minimum near {tuple(guess)} vanished with these parameters")
        return Minimum(
            name=name,
            location=(float(theta[0]), float(theta[1])),
            value=float(self.value(theta)),
            eigenvalues=(float(eigenvalues[1]), float(eigenvalues[0])),
        )


# Newton's method converges quadratically from the well centres; this bound only catches a vanished minimum.
_NEWTON_ITERATIONS = 100
# λ1 and λ2 closer than this (relative to the largest |λ|) count as equal: ∇λ1 is then undefined unless isotropic.
_DEGENERATE_GAP = 1e-9


def _rotation(angle_degrees: float) -> torch.Tensor:
    """The 2×2 rotation by ``angle_degrees`` (counter-clockwise), float64."""
    angle = math.radians(angle_degrees)
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)


class AnisotropicQuadratic(Landscape):
    """L(θ) = ½ (θ − c)ᵀ A (θ − c) with A = R(φ) diag(λ1, λ2) R(φ)ᵀ: one minimum, constant Hessian A.

    v1 is the unit vector at angle φ everywhere, so ∠(g, v1) and the SAM variants' corrections are easiest to
    read here. Plain gradient descent converges for lr < 2/λ1.

    Args:
        lambda_max: λ1 > 0, the curvature along v1.
        lambda_min: λ2 in (0, λ1], the curvature across.
        angle_degrees: φ, the angle of v1 from the x-axis, in degrees.
        center: c, the minimum.
    """

    name = "quadratic"

    def __init__(
        self,
        lambda_max: float = 10.0,
        lambda_min: float = 1.0,
        angle_degrees: float = 30.0,
        center: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.lambda_max = check_float("lambda_max", lambda_max, minimum=0.0, min_inclusive=False)
        self.lambda_min = check_float(
            "lambda_min", lambda_min, minimum=0.0, maximum=self.lambda_max, min_inclusive=False
        )
        self.angle_degrees = check_float("angle_degrees", angle_degrees)
        self.center = check_point("center", center)
        rotation = _rotation(self.angle_degrees)
        self.matrix = rotation @ torch.diag(torch.tensor([self.lambda_max, self.lambda_min])).double() @ rotation.T
        self.bounds = ((self.center[0] - 2.0, self.center[0] + 2.0), (self.center[1] - 2.0, self.center[1] + 2.0))
        self.minima = (Minimum("minimum", self.center, 0.0, (self.lambda_max, self.lambda_min)),)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        offset = theta - _as_like(self.center, theta)
        return 0.5 * ((offset @ self.matrix) * offset).sum(-1)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        return (theta - _as_like(self.center, theta)) @ self.matrix

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        return self.matrix.to(theta).expand(*theta.shape[:-1], 2, 2).clone()

    def third_derivative(self, theta: torch.Tensor) -> torch.Tensor:
        """Zero: the Hessian is constant, and so is λ1 (∇λ1 = 0 everywhere)."""
        return theta.new_zeros(*theta.shape[:-1], 2, 2, 2)


class GaussianWells(Landscape):
    """Two Gaussian wells of equal depth side by side, a narrow (sharp) one and a wide (flat) one, in a bowl.

    L(θ) = ½ κ‖θ‖² − d·exp(−½ (θ − c_s)ᵀ P_s (θ − c_s)) − d·exp(−½ (θ − c_f)ᵀ P_f (θ − c_f)), with
    P = diag(1/σx², 1/σy²) per well. Its gradient is κθ + Σ d·e·P(θ − c) and its Hessian
    κI + Σ d·e·(P − p pᵀ) with p = P(θ − c), e each well's exponential; since ∇e = −e·p, its third derivative is
    Σ d·e·(p_i p_j p_k − P_ij p_k − P_ik p_j − P_jk p_i). The wells are anisotropic, so v1 is defined at
    both minima (along x). Equal depths make the minima's losses nearly equal: only their sharpness differs. Unlike
    ``SharpFlatBasins`` the wells' curvature fades with distance (the gradient is bounded), and the saddle between
    them is shallow: a place where SAM can linger.

    Args:
        depth: d > 0, the depth of both wells.
        sharp_center, flat_center: c_s and c_f, the wells' centres (the minima lie close to them).
        sharp_widths, flat_widths: (σx, σy) > 0 of each well; the sharp well must be narrower.
        confinement: κ ≥ 0, the curvature of the bowl that keeps every trajectory near the wells.
    """

    name = "gaussian_wells"

    def __init__(
        self,
        depth: float = 1.0,
        sharp_center: tuple[float, float] = (-1.0, 0.0),
        flat_center: tuple[float, float] = (1.0, 0.0),
        sharp_widths: tuple[float, float] = (0.2, 0.6),
        flat_widths: tuple[float, float] = (0.7, 1.0),
        confinement: float = 0.1,
    ) -> None:
        self.depth = check_float("depth", depth, minimum=0.0, min_inclusive=False)
        self.sharp_center = check_point("sharp_center", sharp_center)
        self.flat_center = check_point("flat_center", flat_center)
        self.sharp_widths = _check_positive_pair("sharp_widths", sharp_widths)
        self.flat_widths = _check_positive_pair("flat_widths", flat_widths)
        if max(self.sharp_widths) >= min(self.flat_widths):
            raise ValueError(
                f"sharp_widths {self.sharp_widths} must all be smaller than flat_widths {self.flat_widths}"
            )
        self.confinement = check_float("confinement", confinement, minimum=0.0)
        self.centers = torch.tensor([self.sharp_center, self.flat_center], dtype=torch.float64)  # (2 wells, 2)
        widths = torch.tensor([self.sharp_widths, self.flat_widths], dtype=torch.float64)
        self.precisions = widths**-2  # (2 wells, 2): the diagonals of P_s and P_f
        (x_low, x_high), (y_low, y_high) = _box([self.sharp_center, self.flat_center], widths.max(0).values)
        self.bounds = ((x_low, x_high), (y_low, y_high))
        self.minima = (
            self._find_minimum("sharp", self.sharp_center),
            self._find_minimum("flat", self.flat_center),
        )

    def _wells(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offsets θ − c ``(..., 2 wells, 2)`` and weighted exponentials d·e ``(..., 2 wells)``."""
        offsets = theta.unsqueeze(-2) - self.centers.to(theta)
        exponent = -0.5 * (offsets**2 * self.precisions.to(theta)).sum(-1)
        return offsets, self.depth * torch.exp(exponent)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        _, weights = self._wells(theta)
        return 0.5 * self.confinement * (theta**2).sum(-1) - weights.sum(-1)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        offsets, weights = self._wells(theta)
        pulls = offsets * self.precisions.to(theta)  # P(θ − c), (..., 2 wells, 2)
        return self.confinement * theta + (weights.unsqueeze(-1) * pulls).sum(-2)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        offsets, weights = self._wells(theta)
        precisions = self.precisions.to(theta)
        pulls = offsets * precisions
        per_well = torch.diag_embed(precisions).expand_as(pulls.unsqueeze(-1) * pulls.unsqueeze(-2))
        per_well = per_well - pulls.unsqueeze(-1) * pulls.unsqueeze(-2)  # P − P d dᵀ P, (..., 2 wells, 2, 2)
        identity = torch.eye(2, dtype=theta.dtype, device=theta.device)
        return self.confinement * identity + (weights[..., None, None] * per_well).sum(-3)

    def third_derivative(self, theta: torch.Tensor) -> torch.Tensor:
        offsets, weights = self._wells(theta)
        precisions = torch.diag_embed(self.precisions.to(theta))  # (2 wells, 2, 2)
        pulls = offsets * self.precisions.to(theta)  # p = P(θ − c), (..., 2 wells, 2)
        cubes = torch.einsum("...i,...j,...k->...ijk", pulls, pulls, pulls)
        mixed = torch.einsum("wij,...wk->...wijk", precisions, pulls)  # P_ij p_k
        per_well = cubes - mixed - mixed.transpose(-1, -2) - mixed.movedim(-1, -3)
        return (weights[..., None, None, None] * per_well).sum(-4)


class SharpFlatBasins(Landscape):
    """A sharp and a flat quadratic basin side by side, joined smoothly: a soft minimum of two quadratics.

    L(θ) = −τ·log(exp(−q_s(θ)/τ) + exp(−q_f(θ)/τ)) with q(θ) = ½ (θ − c)ᵀ diag(κ) (θ − c) per basin. Away from the
    ridge where q_s = q_f, L equals the lower quadratic, so each basin keeps its curvature κ all the way to the ridge
    (λ1 = 25 in the sharp basin, 2 in the flat one by default) and both minima have L ≈ 0: only their sharpness
    differs. τ (loss units) sets how smoothly the ridge is rounded. With softmax weights w = softmax(−q/τ) and
    ∇q_k = diag(κ_k)(θ − c_k): ∇L = Σ w_k ∇q_k =: ḡ and ∇²L = Σ w_k diag(κ_k) − (Σ w_k ∇q_k ∇q_kᵀ − ḡḡᵀ)/τ.
    Differentiating the softmax average once more (∂w_k = −w_k(∇q_k − ḡ)/τ) gives, with K_k = diag(κ_k) and
    deviations δ_k = ∇q_k − ḡ, ∇³L_ijl = −(C_ij,l + C_il,j + C_jl,i)/τ + Σ w_k δ_k,i δ_k,j δ_k,l / τ², where
    C_ij,l = Σ w_k K_k,ij δ_k,l (the covariance of the basins' curvature with their gradient).

    Inside a basin the dynamics are those of a quadratic with known λ1, so stability arguments hold exactly: GD
    stays for lr·λ1 < 2, and SAM's bounce along v1 has amplitude lr·λ1·ρ/(2 − lr·λ1).

    Args:
        sharp_center, flat_center: c_s and c_f, the minima.
        sharp_curvatures, flat_curvatures: κ = (κx, κy) > 0 per basin, the Hessian's eigenvalues there; the
            sharp basin's largest must exceed the flat basin's largest.
        smoothing: τ > 0, the rounding of the ridge between the basins (loss units).
    """

    name = "sharp_flat"

    def __init__(
        self,
        sharp_center: tuple[float, float] = (-1.0, 0.0),
        flat_center: tuple[float, float] = (1.0, 0.0),
        sharp_curvatures: tuple[float, float] = (25.0, 5.0),
        flat_curvatures: tuple[float, float] = (2.0, 1.0),
        smoothing: float = 0.1,
    ) -> None:
        self.sharp_center = check_point("sharp_center", sharp_center)
        self.flat_center = check_point("flat_center", flat_center)
        self.sharp_curvatures = _check_positive_pair("sharp_curvatures", sharp_curvatures)
        self.flat_curvatures = _check_positive_pair("flat_curvatures", flat_curvatures)
        if max(self.sharp_curvatures) <= max(self.flat_curvatures):
            raise ValueError(
                f"sharp_curvatures {self.sharp_curvatures} must have a larger top curvature than flat_curvatures "
                f"{self.flat_curvatures}"
            )
        self.smoothing = check_float("smoothing", smoothing, minimum=0.0, min_inclusive=False)
        self.centers = torch.tensor([self.sharp_center, self.flat_center], dtype=torch.float64)  # (2 basins, 2)
        self.curvatures = torch.tensor([self.sharp_curvatures, self.flat_curvatures], dtype=torch.float64)
        widths = self.curvatures.min(0).values ** -0.5  # the flat basin's length scale per axis
        self.bounds = _box([self.sharp_center, self.flat_center], widths)
        self.minima = (
            self._find_minimum("sharp", self.sharp_center),
            self._find_minimum("flat", self.flat_center),
        )

    def _basins(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each basin's gradient ∇q_k ``(..., 2 basins, 2)`` and its softmax weight w_k ``(..., 2 basins)``."""
        offsets = theta.unsqueeze(-2) - self.centers.to(theta)
        curvatures = self.curvatures.to(theta)
        quadratics = 0.5 * (curvatures * offsets**2).sum(-1)
        return curvatures * offsets, torch.softmax(-quadratics / self.smoothing, dim=-1)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        offsets = theta.unsqueeze(-2) - self.centers.to(theta)
        quadratics = 0.5 * (self.curvatures.to(theta) * offsets**2).sum(-1)
        return -self.smoothing * torch.logsumexp(-quadratics / self.smoothing, dim=-1)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        gradients, weights = self._basins(theta)
        return (weights.unsqueeze(-1) * gradients).sum(-2)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        gradients, weights = self._basins(theta)
        mean = (weights.unsqueeze(-1) * gradients).sum(-2)
        curvature = (weights.unsqueeze(-1) * self.curvatures.to(theta)).sum(-2)
        second_moment = (weights[..., None, None] * gradients.unsqueeze(-1) * gradients.unsqueeze(-2)).sum(-3)
        covariance = second_moment - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        return torch.diag_embed(curvature) - covariance / self.smoothing

    def third_derivative(self, theta: torch.Tensor) -> torch.Tensor:
        gradients, weights = self._basins(theta)
        deviations = gradients - (weights.unsqueeze(-1) * gradients).sum(-2, keepdim=True)  # δ_k, (..., 2 basins, 2)
        curvatures = torch.diag_embed(self.curvatures.to(theta))  # K_k, (2 basins, 2, 2)
        coupling = torch.einsum("...w,wij,...wl->...ijl", weights, curvatures, deviations)  # C_ij,l
        symmetric = coupling + coupling.transpose(-1, -2) + coupling.movedim(-1, -3)
        skew = torch.einsum("...w,...wi,...wj,...wl->...ijl", weights, deviations, deviations, deviations)
        return -symmetric / self.smoothing + skew / self.smoothing**2


class CurvedValley(Landscape):
    """A banana-shaped valley (a scaled Rosenbrock function): L(θ) = ½ a (y − b x²)² + ½ c (x − 1)².

    The valley floor y = b x² bends, so v1 (across the floor) turns along the way and the sharpness across the
    floor grows with |x|: λ1 ≈ a (1 + 4b²x²) on the floor. The minimum is (1, b). With r = y − b x²:
    ∇L = (−2abx·r + c(x − 1), a·r), ∇²L = [[a(4b²x² − 2b·r) + c, −2abx], [−2abx, a]], and the third derivative's
    only non-zero entries are ∂³L/∂x³ = 12ab²x and ∂³L/∂x²∂y = −2ab (in each of its three orders).

    Args:
        steepness: a > 0, the curvature across the valley at x = 0.
        bend: b, the valley's bend (0 gives a straight valley along the x-axis).
        slope: c > 0, the curvature along the floor toward the minimum.
    """

    name = "curved_valley"

    def __init__(self, steepness: float = 10.0, bend: float = 1.0, slope: float = 1.0) -> None:
        self.steepness = check_float("steepness", steepness, minimum=0.0, min_inclusive=False)
        self.bend = check_float("bend", bend)
        self.slope = check_float("slope", slope, minimum=0.0, min_inclusive=False)
        floor_height = max(abs(self.bend), 1.0)
        self.bounds = ((-1.6, 1.6), (-0.6 * floor_height, 2.0 * floor_height))
        self.minima = (self._find_minimum("minimum", (1.0, self.bend)),)

    def _residual(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = theta[..., 0], theta[..., 1]
        return x, y - self.bend * x**2

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        x, residual = self._residual(theta)
        return 0.5 * self.steepness * residual**2 + 0.5 * self.slope * (x - 1.0) ** 2

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        x, residual = self._residual(theta)
        a, b, c = self.steepness, self.bend, self.slope
        return torch.stack([-2 * a * b * x * residual + c * (x - 1.0), a * residual], dim=-1)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        x, residual = self._residual(theta)
        a, b, c = self.steepness, self.bend, self.slope
        xx = a * (4 * b**2 * x**2 - 2 * b * residual) + c
        xy = -2 * a * b * x
        yy = torch.full_like(x, a)
        return torch.stack([torch.stack([xx, xy], -1), torch.stack([xy, yy], -1)], -2)

    def third_derivative(self, theta: torch.Tensor) -> torch.Tensor:
        x = theta[..., 0]
        a, b = self.steepness, self.bend
        third = theta.new_zeros(*theta.shape[:-1], 2, 2, 2)
        third[..., 0, 0, 0] = 12 * a * b**2 * x
        for i, j, k in ((0, 0, 1), (0, 1, 0), (1, 0, 0)):
            third[..., i, j, k] = -2 * a * b
        return third


LANDSCAPES: dict[str, type[Landscape]] = {
    AnisotropicQuadratic.name: AnisotropicQuadratic,
    SharpFlatBasins.name: SharpFlatBasins,
    GaussianWells.name: GaussianWells,
    CurvedValley.name: CurvedValley,
}


def make_landscape(name: str, **params: Any) -> Landscape:
    """Build the landscape ``name`` (one of ``LANDSCAPES``) with the keyword parameters its class documents.

    Raises:
        ValueError: naming ``name`` for an unknown landscape, or the parameter that is out of range.
    """
    check_choice("name", name, LANDSCAPES)
    return LANDSCAPES[name](**params)


def _as_like(point: tuple[float, float], theta: torch.Tensor) -> torch.Tensor:
    return torch.tensor(point, dtype=theta.dtype, device=theta.device)


def check_point(name: str, point: Sequence[float]) -> tuple[float, float]:
    """Return ``point`` as a pair of floats; ValueError naming ``name`` unless it is a finite (x, y)."""
    if not isinstance(point, Sequence) or len(point) != 2:
        raise ValueError(f"{name} must be a pair (x, y) of finite numbers, got {point!r}")
    return (check_float(f"{name}[0]", point[0]), check_float(f"{name}[1]", point[1]))


def _check_positive_pair(name: str, pair: Sequence[float]) -> tuple[float, float]:
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x, y) of positive numbers, got {pair!r}")
    return (
        check_float(f"{name}[0]", pair[0], minimum=0.0, min_inclusive=False),
        check_float(f"{name}[1]", pair[1], minimum=0.0, min_inclusive=False),
    )


def _box(centers: Sequence[tuple[float, float]], widths: torch.Tensor) -> Bounds:
    """The box around ``centers`` with a margin of two widths (σ per axis) on every side."""
    xs, ys = [c[0] for c in centers], [c[1] for c in centers]
    margin_x, margin_y = 2 * float(widths[0]), 2 * float(widths[1])
    return ((min(xs) - margin_x, max(xs) + margin_x), (min(ys) - margin_y, max(ys) + margin_y))
