"""The step decomposition on the Trainer's probe schedule: how much a probed step moves λ1, and through which term.

At a probe step t (opt-in, ``TrainConfig.probe_mechanism``), on the fixed probe batch, before the step:
λ1, v1 and ∇λ1 (``workbench.probes.eigenvalue_gradient``, warm-started from the curvature probe's v1); after it:
λ1 again (warm-started from v1), so the observed change sits next to the first-order prediction ⟨Δθ, ∇λ1⟩ of the
actual update Δθ = θ_{t+1} − θ_t (momentum and weight decay included). For a sharpness-aware optimizer the step's
perturbed gradient is split on the step's own batch at θ_t into g + Hε + r (``workbench.probes.mechanism``), and
the step's direction d into the parts those three contribute; each part's λ1 rate is −lr·⟨part, ∇λ1⟩ (the change
of λ1 the part causes through this step's fresh direction; with momentum, later steps carry it on).

Logged names (λ1 rates in eigenvalue units per step, negative: flattening; r's components in gradient units):

* in the probe row: ``lambda_1_gradient_norm`` ‖∇λ1‖, ``lambda_1_relative_gap`` (λ1 − λ2)/|λ1| (∇λ1 exists only
  where it is > 0; small values mean the next steps may swap v1 and v2);
* with the step: ``lambda_1_rate`` ⟨Δθ, ∇λ1⟩ and ``lambda_1_change`` λ1(θ_{t+1}) − λ1(θ_t); for the SAM family
  ``lambda_1_rate_gradient``, ``lambda_1_rate_second_order`` and ``lambda_1_rate_remainder`` (g's, Hε's and r's
  parts of −lr·⟨d, ∇λ1⟩), ``remainder_share`` (r's part over their sum: the share of the step direction's λ1 rate
  that comes from r), ``remainder_along`` ⟨r, ∇λ1⟩/‖∇λ1‖ (measured) and ``remainder_along_taylor``
  ½‖ε‖²cos²∠(ε, v1)·‖∇λ1‖ (predicted), ``remainder_norm`` ‖r‖ and ``second_order_norm`` ‖Hε‖;
  ``mechanism_hvps``: the Hessian-vector products it took (besides one third-order product and two gradients).

The probe reads the model and the optimizer and changes neither (its products run in eval mode, functionally or
through ``torch.autograd.grad``); it keeps no state between probes, so a resumed run logs the same values.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from workbench.curvature import HessianOperator, top_eigenpairs
from workbench.inputs import LossFn
from workbench.optim import WrappedOptimizer
from workbench.optim.record import StepRecord
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.params import flatten
from workbench.probes.eigenvalue_gradient import EigenvalueGradient, eigenvalue_gradient
from workbench.probes.mechanism import along, decompose_perturbed_gradient, direction_parts, taylor_remainder_along

#: Lanczos tolerance of the mechanism probe's λ1: tight, because ∇λ1's error follows v1's and the observed one-step
#: change of λ1 is small (benchmarks/RESULTS.md, "λ1 mechanism probe", measures what it costs).
MECHANISM_TOL = 1e-4
MECHANISM_MAX_ITER = 200


class MechanismProbe:
    """Measures, at a probe step, how the step moves λ1 (see the module docstring).

    Args:
        model: the network being trained.
        loss_fn: the training loss (either form, ``workbench.losses``).
        probe_batch: the fixed probe batch λ1 is measured on, on the model's device.
        optimizer: the run's optimizer (its ``descent_direction`` and tracked eigenvector split the direction).
        tol, max_iter: Lanczos settings of the two λ1 solves.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        probe_batch: Any,
        optimizer: WrappedOptimizer,
        *,
        tol: float = MECHANISM_TOL,
        max_iter: int = MECHANISM_MAX_ITER,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.probe_batch = probe_batch
        self.optimizer = optimizer
        self.tol = tol
        self.max_iter = max_iter
        self.params = [param for param in model.parameters() if param.requires_grad]
        self._before: tuple[torch.Tensor, EigenvalueGradient] | None = None

    def before_step(self, init: torch.Tensor | None) -> dict[str, float]:
        """λ1, v1 and ∇λ1 at the current weights θ_t (warm-started from ``init``, e.g. the curvature probe's v1)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an unconverged or degenerate probe is logged
            result = eigenvalue_gradient(
                self.model,
                self.loss_fn,
                self.probe_batch,
                params=self.params,
                init=init,
                tol=self.tol,
                max_iter=self.max_iter,
                on_degenerate="ignore",
            )
        self._before = (self._weights(), result)
        return {
            "lambda_1_gradient_norm": float(result.gradient.norm()),
            "lambda_1_relative_gap": result.relative_gap,
        }

    def after_step(self, batch: Any, record: StepRecord) -> dict[str, float]:
        """The step's λ1 rate, the observed change of λ1 and, for the SAM family, the decomposition on ``batch``
        (the step's own batch). Empty when ``before_step`` did not run first."""
        if self._before is None:
            return {}
        weights, before = self._before
        self._before = None
        gradient = before.gradient
        values = {"lambda_1_rate": float(torch.dot(self._weights() - weights, gradient))}
        op = HessianOperator(self.model, self.loss_fn, self.probe_batch, params=self.params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            after = top_eigenpairs(op, k=1, tol=self.tol, max_iter=self.max_iter, init=before.eigenvector)
        values["lambda_1_change"] = float(after.eigenvalues[0]) - before.eigenvalue
        hvps = before.num_hvps + after.num_hvps
        if isinstance(self.optimizer, SharpnessAware) and record.perturbation is not None and not record.skipped:
            values.update(self._decomposition(batch, record, weights, before))
            hvps += 1
        values["mechanism_hvps"] = float(hvps)
        return values

    def _decomposition(
        self, batch: Any, record: StepRecord, weights: torch.Tensor, before: EigenvalueGradient
    ) -> dict[str, float]:
        parts = decompose_perturbed_gradient(
            self.model, self.loss_fn, batch, record.perturbation, at=weights, params=self.params
        )
        eigenvector = self._used_eigenvector(record)
        split = direction_parts(lambda g, g_adv: self.optimizer.descent_direction(g, g_adv, eigenvector), parts)
        lr = float(self.optimizer.param_groups[0]["lr"])
        gradient = before.gradient
        rates = {
            "lambda_1_rate_gradient": -lr * float(torch.dot(split.gradient, gradient)),
            "lambda_1_rate_second_order": -lr * float(torch.dot(split.second_order, gradient)),
            "lambda_1_rate_remainder": -lr * float(torch.dot(split.remainder, gradient)),
        }
        total = sum(rates.values())
        return {
            **rates,
            "remainder_share": rates["lambda_1_rate_remainder"] / total if total != 0 else math.nan,
            "remainder_along": along(parts.remainder, gradient),
            "remainder_along_taylor": taylor_remainder_along(parts.perturbation, before.eigenvector, gradient),
            "remainder_norm": float(parts.remainder.norm()),
            "second_order_norm": float(parts.second_order.norm()),
        }

    def _used_eigenvector(self, record: StepRecord) -> torch.Tensor | None:
        """The v the step used (the tracked vector times its orientation sign), None if it used none."""
        tracker = getattr(self.optimizer, "tracker", None)
        if tracker is None or tracker.vector is None or math.isnan(record.orientation_sign):
            return None
        return record.orientation_sign * tracker.vector

    def _weights(self) -> torch.Tensor:
        return flatten([param.detach() for param in self.params]).clone()
