"""Curvature probes on a schedule: λ1 and v1 (warm-started), trace, and angles to v1, on a fixed batch."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from workbench.curvature import HessianOperator, hessian_trace, top_eigenpairs
from workbench.inputs import LossFn
from workbench.probes.angles import angle_degrees, cosine


class CurvatureProbe:
    """Measures the Hessian of the loss on one fixed probe batch at the current weights.

    v1 is warm-started from the previous probe, so after the first probe a handful of HVPs suffice. The
    angles are sign-invariant (v1's sign is arbitrary): ∠(g, v1) is the acute angle in [0°, 90°] and the
    alignment |cos∠(ε, v1)| lies in [0, 1].

    Args:
        model: the network (probed in eval mode; its own mode is restored).
        loss_fn: the training loss ``loss_fn(outputs, targets)``.
        batch: ``(inputs, targets)`` probe batch, on the model's device.
        top_k: eigenpairs measured (λ1 … λk are logged).
        trace: also estimate tr(H) by Hutch++ with ``trace_samples`` HVPs.
        seed: base seed of the trace probes (each probe uses seed + step).
        process_group: in a run on several processes, their group: ``batch`` is this process's shard of the probe
            batch and every product is averaged across them (``HessianOperator``); None for one process.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        batch: tuple[torch.Tensor, torch.Tensor],
        *,
        top_k: int,
        trace: bool,
        trace_samples: int,
        seed: int,
        process_group: Any = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.batch = batch
        self.top_k = top_k
        self.trace = trace
        self.trace_samples = trace_samples
        self.seed = seed
        self.process_group = process_group
        self.eigenvectors: torch.Tensor | None = None  # (k, n), the warm start of the next probe

    def measure(self, step: int) -> dict[str, float]:
        """Probe at the current weights; returns the metrics and keeps v1 for ``alignment``."""
        op = HessianOperator(self.model, self.loss_fn, self.batch, process_group=self.process_group)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an unconverged probe is logged, not warned
            eigen = top_eigenpairs(op, k=self.top_k, tol=1e-3, max_iter=300, init=self.eigenvectors)
        self.eigenvectors = eigen.eigenvectors
        values = {f"lambda_{i + 1}": float(value) for i, value in enumerate(eigen.eigenvalues)}
        values["eigen_converged"] = float(eigen.converged)
        gradient = op.gradient()
        values["probe_loss_gradient_norm"] = float(gradient.norm())
        values["angle_probe_gradient_v1"] = float(angle_degrees(gradient, self.eigenvectors[0], sign_invariant=True))
        if self.trace:
            trace = hessian_trace(op, num_samples=self.trace_samples, seed=self.seed + step)
            values["trace"] = trace.estimate
            values["trace_stderr"] = trace.stderr
        values["probe_hvps"] = float(op.num_hvps)
        return values

    def alignment(self, gradient: torch.Tensor, perturbation: torch.Tensor | None) -> dict[str, float]:
        """∠(g, v1) (acute, degrees) and |cos∠(ε, v1)| for an optimizer step's g and ε (flat ``(n,)``; ``None``
        for a step without a perturbation)."""
        if self.eigenvectors is None:
            return {}
        top = self.eigenvectors[0]
        values = {"angle_g_v1": float(angle_degrees(gradient, top, sign_invariant=True))}
        if perturbation is not None and float(perturbation.norm()) > 0:
            values["alignment_eps_v1"] = abs(float(cosine(perturbation, top)))
        return {name: value for name, value in values.items() if not math.isnan(value)}
