"""How much of a sharpness-aware step flattens λ1, and which term of the Taylor expansion does it.

Notation (``shared/ALGORITHMS.md``): θ the weights, g = ∇L(θ), ε the step's perturbation, H = ∇²L(θ), v1 and λ1
the top eigenpair, ∇λ1 = ∇³L[v1, v1, ·] (``workbench.probes.eigenvalue_gradient``). Expanding the perturbed
gradient around θ,

    g_adv = ∇L(θ + ε) = g + Hε + r,    r = ½∇³L[ε, ε, ·] + O(‖ε‖³),

where Hε (one Hessian-vector product) is the gradient of the first-order sharpness ⟨g, ε⟩ term and r, the
remainder, is where the third derivative enters. Writing ε = ‖ε‖(c·v1 + …) with c = cos∠(ε, v1), r holds
½‖ε‖²c²·∇³L[v1, v1, ·] = ½‖ε‖²c²·∇λ1: the part of SAM's gradient that pushes λ1 down directly, and it scales with
c², the alignment Eigen-SAM raises. Its predicted component along ∇λ1 is therefore ½‖ε‖²·c²·‖∇λ1‖
(``taylor_remainder_along``; ‖ε‖ = ρ for SAM), against the measured ⟨r, ∇λ1⟩/‖∇λ1‖; the cross terms of ε's other
directions make up the difference.

A step moves the weights by Δθ and changes λ1 by ⟨Δθ, ∇λ1⟩ to first order (the λ1 rate; negative: the step
flattens). ``direction_parts`` splits the step's direction d (what the optimizer hands to its base: g_adv, or
X-SAM's corrected g̃) into the parts that g, Hε and r contribute, so that their rates add up to d's.

Everything here is computed functionally at given weights (the model is not modified) and in eval mode, like
the other probes; for a model without BatchNorm or dropout these are the training step's own vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from workbench.inputs import Data, LossFn, as_batches, check_scalar_loss, param_names, select_params
from workbench.losses import LossModule, as_batch_loss
from workbench.modes import eval_mode
from workbench.params import flatten, unflatten

#: d = D(g, g_adv): the descent direction a step hands to its base optimizer, as a function of g and g_adv.
DescentDirection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PerturbedGradient:
    """g_adv − g = Hε + r at θ on one batch (flat ``(n,)`` tensors, in the units of the gradient; ε in θ's).

    Attributes:
        gradient: g = ∇L(θ).
        perturbation: ε.
        second_order: Hε, the Hessian at θ applied to ε.
        remainder: r = g_adv − g − Hε (third order and beyond, ≈ ½∇³L[ε, ε, ·]).
        loss: L(θ).
    """

    gradient: torch.Tensor
    perturbation: torch.Tensor
    second_order: torch.Tensor
    remainder: torch.Tensor
    loss: float

    @property
    def adversarial_gradient(self) -> torch.Tensor:
        """g_adv = ∇L(θ + ε) = g + Hε + r."""
        return self.gradient + self.second_order + self.remainder


@dataclass(frozen=True)
class DirectionParts:
    """A step direction d = D(g, g_adv) split along g_adv = g + Hε + r, flat ``(n,)`` each, summing to d exactly:
    ``gradient`` = D(g, g), ``second_order`` = D(g, g + Hε) − D(g, g), ``remainder`` = D(g, g_adv) − D(g, g + Hε).
    For SAM and Eigen-SAM (D(g, g_adv) = g_adv) they are g, Hε and r themselves; for X-SAM each carries its share of
    the correction (and of the normalisation, with ``normalize_direction``)."""

    gradient: torch.Tensor
    second_order: torch.Tensor
    remainder: torch.Tensor

    @property
    def direction(self) -> torch.Tensor:
        """d, the sum of the parts."""
        return self.gradient + self.second_order + self.remainder


def decompose_perturbed_gradient(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Data,
    perturbation: torch.Tensor,
    *,
    at: torch.Tensor | None = None,
    params: Iterable[torch.nn.Parameter] | None = None,
) -> PerturbedGradient:
    """g, Hε and r = ∇L(θ + ε) − g − Hε on ``data`` at θ = ``at`` (see the module docstring).

    Cost: one gradient with its graph, one Hessian-vector product through it, one gradient at θ + ε.

    Args:
        model: the network; evaluated functionally in eval mode, never modified.
        loss_fn: an ``(outputs, targets)`` loss or ``workbench.batch_loss(fn)`` (``workbench.losses``).
        data: one batch or a list of batches (the loss is then their size-weighted mean).
        perturbation: ε, flat ``(n,)`` in the order of ``params``.
        at: θ, flat ``(n,)`` (default: the model's current parameters), e.g. the weights before a step.
        params: the parameters θ covers (default: all that require grad).

    Raises:
        ValueError: naming ``perturbation`` or ``at`` when its shape is not ``(n,)``.
    """
    loss = _FlatLoss(model, loss_fn, data, params)
    base = loss.current() if at is None else _check_flat("at", at, loss.num_params).to(loss.current())
    epsilon = _check_flat("perturbation", perturbation, loss.num_params).to(base).detach()
    point = base.detach().clone().requires_grad_(True)
    value, gradient = loss.gradient(point, create_graph=True)
    second_order = None
    if gradient.requires_grad:  # else the loss is linear in θ: H = 0
        (second_order,) = torch.autograd.grad(gradient, point, grad_outputs=epsilon, allow_unused=True)
    second_order = torch.zeros_like(base) if second_order is None else second_order
    _, adversarial = loss.gradient((base + epsilon).detach().requires_grad_(True), create_graph=False)
    gradient = gradient.detach()
    return PerturbedGradient(
        gradient=gradient,
        perturbation=epsilon,
        second_order=second_order.detach(),
        remainder=adversarial - gradient - second_order.detach(),
        loss=value,
    )


def direction_parts(descent_direction: DescentDirection, parts: PerturbedGradient) -> DirectionParts:
    """Split d = D(g, g + Hε + r) into what g, Hε and r contribute (``DirectionParts``), by evaluating D at
    g_adv = g, g + Hε and g + Hε + r (three calls of a cheap vector rule, no products)."""
    g = parts.gradient
    plain = descent_direction(g, g)
    second = descent_direction(g, g + parts.second_order)
    full = descent_direction(g, parts.adversarial_gradient)
    return DirectionParts(gradient=plain, second_order=second - plain, remainder=full - second)


def taylor_remainder_along(
    perturbation: torch.Tensor, eigenvector: torch.Tensor, eigenvalue_gradient: torch.Tensor
) -> float:
    """½‖ε‖²·cos²∠(ε, v1)·‖∇λ1‖: the second-order Taylor prediction of r's component along ∇λ1 (gradient units)."""
    epsilon, vector = perturbation.double(), eigenvector.double().to(perturbation.device)
    aligned = float(torch.dot(epsilon, vector)) ** 2 / float(vector.dot(vector))  # ‖ε‖² cos²∠(ε, v1)
    return 0.5 * aligned * float(eigenvalue_gradient.double().norm())


def along(vector: torch.Tensor, direction: torch.Tensor) -> float:
    """⟨vector, direction⟩ / ‖direction‖, the component of ``vector`` along ``direction`` (NaN for a zero one)."""
    norm = float(direction.double().norm())
    return float(torch.dot(vector.double(), direction.double().to(vector.device))) / norm if norm > 0 else float("nan")


class _FlatLoss:
    """L(θ) of a flat parameter vector θ, by ``torch.func.functional_call`` in eval mode (the model is not modified)."""

    def __init__(
        self, model: torch.nn.Module, loss_fn: LossFn, data: Data, params: Iterable[torch.nn.Parameter] | None
    ) -> None:
        self.model = model
        self.module = LossModule(model, as_batch_loss(loss_fn))
        self.params = select_params(model, params)
        self.names = [f"model.{name}" for name in param_names(model, self.params)]
        self.batches = as_batches(data)
        self.num_params = sum(p.numel() for p in self.params)

    def current(self) -> torch.Tensor:
        """The model's parameters now, a flat detached copy ``(n,)``."""
        return flatten([p.detach() for p in self.params]).clone()

    def gradient(self, point: torch.Tensor, *, create_graph: bool) -> tuple[float, torch.Tensor]:
        """L(point) and ∇L(point) ``(n,)`` (carrying its graph with ``create_graph``), size-weighted over batches."""
        device = point.device
        total_loss, total_gradient = 0.0, torch.zeros_like(point)
        with eval_mode(self.model), torch.enable_grad():
            for batch in self.batches:
                values = dict(zip(self.names, unflatten(point, self.params), strict=True))
                loss = torch.func.functional_call(self.module, values, (batch.on(device),))
                check_scalar_loss(loss)
                (grad,) = torch.autograd.grad(loss, point, create_graph=create_graph, allow_unused=True)
                total_loss += batch.weight * float(loss.detach())
                if grad is not None:
                    total_gradient = total_gradient + batch.weight * grad
        return total_loss, total_gradient if create_graph else total_gradient.detach()


def _check_flat(name: str, vector: torch.Tensor, size: int) -> torch.Tensor:
    if not isinstance(vector, torch.Tensor) or vector.dim() != 1 or vector.numel() != size:
        shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise ValueError(f"{name} must be a flat tensor of shape ({size},), got {shape}")
    return vector
