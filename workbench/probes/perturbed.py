"""A model's loss at perturbed parameters θ + δ, computed functionally: the model itself is never modified.

``PerturbedLoss`` holds the model, the loss, the data and the flat base point θ. It gives the loss and its
gradient at one point (for ascent probes) and the losses, optionally the accuracies, at many points: a chunk of
stacked parameter sets at a time with ``torch.func.functional_call`` under ``torch.func.vmap`` (one batched
forward pass per chunk), or point by point on a private copy of the model (``workbench.probes.pointwise``),
eagerly or through ``torch.compile``, chosen automatically unless told. The model is in eval
mode throughout (BatchNorm uses its running statistics and updates nothing) and its own flags are restored
afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from workbench.batching import describe
from workbench.inputs import Data, LossFn, as_batches, check_scalar_loss, param_names, select_params
from workbench.losses import LossModule, as_batch_loss
from workbench.modes import eval_mode
from workbench.params import flatten, unflatten
from workbench.probes.pointwise import point_model_for, pointwise_losses

#: (parameter values, batch) -> (loss, accuracy), for one point or, vmapped, for a chunk of points.
PointMetrics = Callable[[list[torch.Tensor], Any], tuple[torch.Tensor, torch.Tensor]]

#: Points per batched forward pass unless the caller says otherwise: the fastest or tied-fastest of 4, 16 and 64
#: in every vmap run of benchmarks/landscape_grid.py (benchmarks/RESULTS.md, "Landscape grid").
DEFAULT_CHUNK_SIZE = 16


class PerturbedLoss:
    """L(θ + δ) for offsets δ from the model's current parameters θ, averaged over the data's batches.

    Args:
        model: the network; evaluated in eval mode, never modified.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` averaged over the batch, or ``workbench.batch_loss(fn)``
            with ``fn(model, batch)`` (see ``workbench.losses``).
        data: one batch or an iterable of batches (read once and kept); with several the loss is their
            size-weighted mean, the loss over all their samples.
        params: the parameters δ perturbs (default: all that require grad); others keep their values.

    Offsets are flat tensors ``(n,)`` (or rows ``(m, n)``) in the order of ``params``; ``base`` is θ as a
    flat ``(n,)`` copy taken at construction.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        data: Data,
        *,
        params: Iterable[torch.nn.Parameter] | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.module = LossModule(model, as_batch_loss(loss_fn))
        self.params = select_params(model, params)
        self.model_names = param_names(model, self.params)  # as model.named_parameters() gives them
        self.names = [f"model.{name}" for name in self.model_names]  # the same, in self.module
        self.batches = as_batches(data)
        self.base = flatten([p.detach() for p in self.params])
        self.device = self.base.device

    @property
    def num_params(self) -> int:
        """n, the length of θ and of every offset."""
        return self.base.numel()

    def loss_and_gradient(self, offset: torch.Tensor) -> tuple[float, torch.Tensor]:
        """L(θ + δ) and ∇L(θ + δ) (a flat ``(n,)`` tensor) for one offset δ ``(n,)``."""
        point = (self.base + offset.detach().to(device=self.device, dtype=self.base.dtype)).requires_grad_(True)
        loss_total = 0.0
        gradient = torch.zeros_like(self.base)
        with eval_mode(self.model), torch.enable_grad():
            for batch in self.batches:
                loss = self._call(unflatten(point, self.params), batch.on(self.device))
                check_scalar_loss(loss)
                (grad,) = torch.autograd.grad(loss, point, allow_unused=True)
                loss_total += batch.weight * float(loss.detach())
                if grad is not None:
                    gradient += batch.weight * grad
        return loss_total, gradient

    def loss(self, offset: torch.Tensor) -> float:
        """L(θ + δ) for one offset δ ``(n,)``, by the same (unbatched) call as ``loss_and_gradient``."""
        point = self.base + offset.detach().to(device=self.device, dtype=self.base.dtype)
        total = 0.0
        with eval_mode(self.model), torch.no_grad():
            for batch in self.batches:
                loss = self._call(unflatten(point, self.params), batch.on(self.device))
                check_scalar_loss(loss)
                total += batch.weight * float(loss)
        return total

    def losses(
        self,
        offset_chunks: Iterable[torch.Tensor],
        *,
        accuracy: bool = False,
        vectorize: bool | None = None,
        torch_compile: bool | None = None,
        num_points: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Loss (and accuracy) at θ + δ for every row δ of every chunk ``(c, n)``, in order.

        Args:
            offset_chunks: chunks of offsets, evaluated one chunk at a time (memory: about c copies of the
                parameters, and with ``vectorize`` c times the activations of one forward pass).
            accuracy: also return the fraction of samples whose arg-max class (dim 1) equals the integer target
                (an ``(outputs, targets)`` loss with class scores ``(batch, classes, ...)``, targets
                ``(batch, ...)``).
            vectorize: True evaluates a chunk in one ``torch.func.vmap`` call over its stacked parameter sets
                (``functional_call``); False evaluates point by point on a private copy of the model whose
                parameters are overwritten in place (``workbench.probes.pointwise``; channels-last for images on a
                CPU), falling back to ``functional_call`` per point when the model cannot be deep-copied (also the
                way out for models ``vmap`` cannot trace, e.g. data-dependent Python control flow). None (default)
                vectorises off the CPU only: on a CPU a forward pass over a batch is compute-bound, vmap saves no
                work there and turns convolutions into slower grouped ones (benchmarks/RESULTS.md, "Landscape
                grid").
            torch_compile: True runs the forward pass through ``torch.compile`` (a one-off compilation of
                seconds, cached per model and loss function for the point-by-point path; then fused kernels); False
                never does. None (default): False with ``vectorize``; point by point, compile when the points would
                take long enough eagerly to repay it, judged from timed eager points
                (``pointwise.COMPILE_PAYS_SECONDS``), on a CPU only.
            num_points: how many offsets ``offset_chunks`` holds (for the automatic choice; None: never compile
                unless told).

        Returns:
            ``(losses, accuracies)``: float64 CPU tensors ``(m,)``, ``accuracies`` None unless asked for.
        """
        vectorize = self.device.type != "cpu" if vectorize is None else bool(vectorize)
        if not vectorize:
            point_model = point_model_for(self.model, self.model_names, self.batches[0].data)
            if point_model is not None:
                points = (
                    point
                    for chunk in offset_chunks
                    for point in self.base + chunk.to(device=self.device, dtype=self.base.dtype)
                )
                losses, corrects = pointwise_losses(
                    point_model,
                    points,
                    self.batches,
                    self.module.loss,
                    accuracy=accuracy,
                    torch_compile=torch_compile,
                    num_points=num_points,
                )
                return losses, corrects
        torch_compile = bool(torch_compile)
        evaluate = _evaluator(self._point_metrics(accuracy), vectorize, torch_compile)
        loss_parts: list[torch.Tensor] = []
        accuracy_parts: list[torch.Tensor] = []
        width = None
        with torch.no_grad(), eval_mode(self.model):
            for chunk in offset_chunks:
                rows = chunk.shape[0]
                width = rows if width is None else width
                if vectorize and torch_compile and rows < width:  # keep one shape: no recompilation for the tail
                    chunk = torch.cat([chunk, chunk.new_zeros(width - rows, chunk.shape[1])])
                values = unflatten(self.base + chunk.to(device=self.device, dtype=self.base.dtype), self.params)
                chunk_loss = torch.zeros(rows, dtype=torch.float64)
                chunk_accuracy = torch.zeros(rows, dtype=torch.float64)
                for batch in self.batches:
                    loss, correct = evaluate(values, batch.on(self.device))
                    chunk_loss += batch.weight * loss[:rows].cpu().double()
                    if accuracy:
                        chunk_accuracy += batch.weight * correct[:rows].cpu().double()
                loss_parts.append(chunk_loss)
                accuracy_parts.append(chunk_accuracy)
        losses = torch.cat(loss_parts) if loss_parts else torch.zeros(0, dtype=torch.float64)
        return losses, (torch.cat(accuracy_parts) if accuracy and accuracy_parts else None)

    def _call(self, values: list[torch.Tensor], batch: Any) -> torch.Tensor:
        return torch.func.functional_call(self.module, dict(zip(self.names, values, strict=True)), (batch,))

    def _point_metrics(self, accuracy: bool) -> PointMetrics:
        loss_module = self.module

        def metrics(values: list[torch.Tensor], batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
            parameters = dict(zip(self.names, values, strict=True))
            if not accuracy:
                loss = torch.func.functional_call(loss_module, parameters, (batch,))
                check_scalar_loss(loss)
                return loss, loss
            loss, correct = torch.func.functional_call(
                loss_module, parameters, (batch,), {"with_accuracy": True}, strict=False
            )
            check_scalar_loss(loss)
            if correct is None:
                raise ValueError(
                    "accuracy=True needs an (outputs, targets) loss with class scores (batch, classes, ...) and "
                    f"integer targets of matching shape; got {describe(batch)}"
                )
            return loss, correct.to(loss.dtype)

        return metrics


def offset_chunks(coefficients: torch.Tensor, directions: torch.Tensor, chunk_size: int) -> Iterator[torch.Tensor]:
    """Offsets ``coefficients @ directions`` (``(m, k) @ (k, n)``), produced ``chunk_size`` rows at a time."""
    for block in torch.split(coefficients, chunk_size):
        yield block.to(device=directions.device, dtype=directions.dtype) @ directions


def _evaluator(point_metrics: PointMetrics, vectorize: bool, torch_compile: bool) -> PointMetrics:
    """Turn the one-point function into a chunk function: vmapped, or a loop over the chunk's rows."""
    if vectorize:
        chunk_metrics = torch.func.vmap(point_metrics, in_dims=(0, None))
        return torch.compile(chunk_metrics) if torch_compile else chunk_metrics
    one_point = torch.compile(point_metrics) if torch_compile else point_metrics

    def looped(values: list[torch.Tensor], batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [one_point([v[i] for v in values], batch) for i in range(values[0].shape[0])]
        return torch.stack([loss for loss, _ in rows]), torch.stack([correct for _, correct in rows])

    return looped
