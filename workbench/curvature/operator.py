"""The Hessian of a model's loss as a linear operator, applied by exact Hessian-vector products (HVPs).

Two exact HVP engines sit behind one interface:

* ``"graph"``: double backprop. The gradient is computed once with ``create_graph=True`` and kept; each HVP
  is one backward pass through that graph. Fastest when many HVPs are taken on the same batch (Lanczos,
  trace estimation), which is why it is the default (see benchmarks/RESULTS.md).
* ``"func"``: forward-over-reverse with ``torch.func.jvp(torch.func.grad(...))``. Recomputes the forward
  pass per product and keeps no graph between products, so its memory stays at one forward/backward.

Both also apply to a batch of vectors at once (``batched_matvec``), vectorised with ``vmap``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from workbench._checks import check_choice, check_int
from workbench.devices import resolve_device, to_host
from workbench.inputs import Data, LossFn, as_batches, check_scalar_loss, param_names, select_params
from workbench.losses import LossModule, as_batch_loss
from workbench.modes import eval_mode
from workbench.params import as_flat, flatten, unflatten

HVP_METHODS = ("auto", "graph", "func")


class HessianOperator:
    """H = ∇²θ L(θ) for a mean-reduced loss L: ``loss_fn(model(inputs), targets)``, or ``loss_fn(model, batch)``.

    Args:
        model: the network; it is put in eval mode while the loss is evaluated (BatchNorm uses its running
            statistics, dropout is off) and its own train/eval flags are restored afterwards.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` averaged over the batch (e.g. ``F.cross_entropy``), for
            ``(inputs, targets)`` batches; or ``workbench.batch_loss(fn)`` with ``fn(model, batch) -> scalar`` for
            batches of any structure (a dict of tensors, say).
        data: one batch, or an iterable of batches (a DataLoader). With several batches the operator is the
            full-data Hessian, the size-weighted average of the batch Hessians. The iterable is read once and its
            batches kept, so every product sees the same operator even when the loader shuffles or augments.
        params: the parameters H is taken with respect to (default: all of ``model``'s that require grad).
        device: ``"auto"`` (the device the parameters live on) or an explicit device, which must be that one.
        hvp: ``"graph"`` (double backprop, graph kept), ``"func"`` (torch.func forward-over-reverse) or
            ``"auto"`` (= ``"graph"``).
        cache_graph: for ``hvp="graph"``, keep each batch's gradient graph between products (default: True
            for a single batch, False for several, where every product recomputes each batch's graph).
        max_batched: largest number of vectors pushed through one vectorised (``vmap``) HVP call in
            ``batched_matvec``. Default 1, one product at a time: on CPU, vmap over 8 vectors was slower per
            product than a loop for both engines on the benchmark CNN and MLP (``benchmarks/hvp_engines.py``,
            benchmarks/RESULTS.md); raise it where measurements on your device say otherwise.
        process_group: a ``torch.distributed`` process group whose processes each hold a shard of the data (each
            builds its operator on its own ``data``): every product and ``gradient()`` is then averaged across
            them, weighted by their sample counts (one all-reduce each), so each process holds the Hessian of the
            union of the shards and gets the same results; None (default): this process's data alone.

    Vectors are flat tensors of shape ``(num_params,)`` in the parameters' dtype and device, or per-parameter
    lists; ``matvec`` returns the same form it was given.

    Raises:
        ValueError: when the loss is not finite (NaN or infinite weights or inputs): here for the first batch, in a
            product for any other; likewise when a product overflows. No eigensolver or trace estimate then runs
            on garbage.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        data: Data,
        *,
        params: Iterable[torch.nn.Parameter] | None = None,
        device: str | torch.device = "auto",
        hvp: str = "auto",
        cache_graph: bool | None = None,
        max_batched: int = 1,
        process_group: Any = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.objective = as_batch_loss(loss_fn)
        self.params = select_params(model, params)
        self.device = _check_device(device, self.params)
        self.dtype = self.params[0].dtype
        self.hvp_method = "graph" if check_choice("hvp", hvp, HVP_METHODS) == "auto" else hvp
        self.max_batched = check_int("max_batched", max_batched, minimum=1)
        self._batches = as_batches(data)
        self.num_samples = sum(batch.size for batch in self._batches)
        self.cache_graph = len(self._batches) == 1 if cache_graph is None else bool(cache_graph)
        self._graphs: list[list[torch.Tensor | None]] | None = None
        self.param_names = param_names(model, self.params) if self.hvp_method == "func" else None
        self.num_hvps = 0
        self.num_third_order = 0
        self._check_loss_depends_on_params()
        # -- across processes (workbench.distributed): products averaged over the shards, by sample count --
        self._across_ranks = None
        if process_group is not None:
            from workbench.distributed.averaging import RankAverage

            self._across_ranks = RankAverage(process_group, weight=float(self.num_samples))

    @property
    def num_params(self) -> int:
        """Number of scalar parameters n; H is n × n."""
        return sum(p.numel() for p in self.params)

    def matvec(self, vector: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Return H·v, exact up to floating point, as a flat tensor or a per-parameter list like ``vector``."""
        flat = as_flat(vector, self.params, "vector").to(device=self.device, dtype=self.dtype)
        result = self.batched_matvec(flat.unsqueeze(0))[0]
        return result if isinstance(vector, torch.Tensor) else unflatten(result, self.params)

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        """Return H·vᵢ for each row of ``vectors`` (shape ``(b, num_params)``), as a ``(b, num_params)`` tensor."""
        if vectors.dim() != 2 or vectors.shape[1] != self.num_params:
            raise ValueError(
                f"vectors must have shape (b, {self.num_params}), one vector per row; got {tuple(vectors.shape)}"
            )
        vectors = vectors.to(device=self.device, dtype=self.dtype)
        chunks = [self._apply(chunk) for chunk in torch.split(vectors, self.max_batched)]
        self.num_hvps += vectors.shape[0]
        products = torch.cat(chunks) if chunks else vectors.clone()
        return products if self._across_ranks is None else self._across_ranks(products)

    def gradient(self) -> torch.Tensor:
        """The loss gradient ∇θ L as a flat tensor ``(num_params,)`` (size-weighted over the batches)."""
        total = torch.zeros(self.num_params, device=self.device, dtype=self.dtype)
        for index, batch in enumerate(self._batches):
            grads = self._grads_with_graph(index)
            total += batch.weight * flatten(
                [_zeros_if_none(g, p).detach() for g, p in zip(grads, self.params, strict=True)]
            )
        return total if self._across_ranks is None else self._across_ranks(total)

    def quadratic_form_gradient(self, vector: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """∇θ(vᵀH(θ)v) for a fixed v: the loss's third derivative contracted with v twice, ``(num_params,)``.

        At a unit eigenvector v of a simple eigenvalue λ this is ∇θλ (the eigenvector's own change drops out,
        Hellmann–Feynman). Computed by differentiating the Hessian-vector product: H·v with its own graph (a
        double backward through the gradient's graph), then one backward of ⟨v, H·v⟩; size-weighted over the
        batches. Counted in ``num_third_order`` (one per call); it costs about two HVPs of the graph engine.

        Args:
            vector: v, a flat ``(num_params,)`` tensor or a per-parameter list (any norm: the result scales with
                ‖v‖²).
        """
        flat = as_flat(vector, self.params, "vector").to(device=self.device, dtype=self.dtype).detach()
        pieces = unflatten(flat, self.params)
        total = torch.zeros(self.num_params, device=self.device, dtype=self.dtype)
        for index, batch in enumerate(self._batches):
            grads = self._grads_with_graph(index) if self.hvp_method == "graph" else self._compute_grads(index)
            total += batch.weight * _quadratic_form_gradient(grads, self.params, pieces)
        self.num_third_order += 1
        return total

    def to_linear_operator(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` (float64) so that e.g. ``eigsh`` can run on H."""

        def matmat(block: np.ndarray) -> np.ndarray:
            columns = torch.as_tensor(np.ascontiguousarray(block.T))
            return to_host(self.batched_matvec(columns)).numpy().T

        def matvec(vector: np.ndarray) -> np.ndarray:
            return matmat(np.asarray(vector).reshape(-1, 1)).ravel()

        n = self.num_params
        return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np.float64)

    # -- engines ---------------------------------------------------------------------------------

    def _apply(self, vectors: torch.Tensor) -> torch.Tensor:
        """H applied to a chunk of row vectors ``(b, n)``, summed over batches with their weights."""
        total = torch.zeros_like(vectors)
        engine = self._graph_hvp if self.hvp_method == "graph" else self._func_hvp
        for index, batch in enumerate(self._batches):
            total += batch.weight * engine(index, vectors)
        if not bool(torch.isfinite(total).all()):
            raise ValueError(
                "a Hessian-vector product is not finite: the loss is not finite on some batch of the Hessian's data, "
                "or its curvature overflows the parameters' dtype at these weights"
            )
        return total

    def _graph_hvp(self, index: int, vectors: torch.Tensor) -> torch.Tensor:
        return graph_hvp(self._grads_with_graph(index), self.params, vectors)

    def _func_hvp(self, index: int, vectors: torch.Tensor) -> torch.Tensor:
        batch = self._batches[index].on(self.device)
        names = self.param_names
        assert names is not None
        module = LossModule(self.model, self.objective)

        def loss_of(flat_params: torch.Tensor) -> torch.Tensor:
            pieces = unflatten(flat_params, self.params)
            values = {f"model.{name}": piece for name, piece in zip(names, pieces, strict=True)}
            return torch.func.functional_call(module, values, (batch,))

        primal = flatten([p.detach() for p in self.params])
        gradient_of = torch.func.grad(loss_of)

        def hvp_one(tangent: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(gradient_of, (primal,), (tangent,))[1]

        with eval_mode(self.model):
            if vectors.shape[0] == 1:
                return hvp_one(vectors[0]).unsqueeze(0)
            return torch.func.vmap(hvp_one)(vectors)

    def _grads_with_graph(self, index: int) -> list[torch.Tensor | None]:
        """Gradient of batch ``index``'s loss with its graph (cached when ``cache_graph``)."""
        if self._graphs is not None:
            return self._graphs[index]
        if self.cache_graph:
            self._graphs = [self._compute_grads(i) for i in range(len(self._batches))]
            return self._graphs[index]
        return self._compute_grads(index)

    def _compute_grads(self, index: int) -> list[torch.Tensor | None]:
        batch = self._batches[index].on(self.device)
        with eval_mode(self.model), torch.enable_grad():
            loss = self.objective(self.model, batch)
        check_scalar_loss(loss)
        if not bool(torch.isfinite(loss.detach()).all()):
            raise ValueError(
                f"the loss is not finite ({float(loss.detach())}) on batch {index} of the Hessian's data: the weights "
                "or the inputs hold NaN or infinity (a diverged run?), and the Hessian is not defined there"
            )
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on the parameters (it carries no gradient); check loss_fn")
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError("the loss does not depend on the parameters: every gradient is empty; check params")
        return list(grads)

    def _check_loss_depends_on_params(self) -> None:
        """Evaluate the first batch once so that a broken loss fails here, not inside an eigensolver."""
        if self.hvp_method == "graph" and self.cache_graph:
            self._grads_with_graph(0)
        else:
            self._compute_grads(0)


class GradientGraphOperator:
    """H·v through a gradient graph the caller already built (``torch.autograd.grad(..., create_graph=True)``).

    Used where the loss comes from someone else's closure (the SAM-family eigen-tracker): no forward pass is
    repeated, each product is one backward pass. Implements ``SymmetricOperator``.

    Args:
        grads: per-parameter gradients carrying their graph (``None`` for parameters the loss does not use).
        params: the parameters they were taken with respect to.
    """

    def __init__(self, grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> None:
        if len(grads) != len(params):
            raise ValueError(f"grads must hold one entry per parameter ({len(params)}), got {len(grads)}")
        self.grads = list(grads)
        self.params = list(params)
        self.num_params = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.num_hvps = 0

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        """Return H·vᵢ for each row of ``vectors`` ``(b, num_params)``; the graph is kept for more products."""
        if vectors.dim() != 2 or vectors.shape[1] != self.num_params:
            raise ValueError(f"vectors must have shape (b, {self.num_params}), got {tuple(vectors.shape)}")
        self.num_hvps += vectors.shape[0]
        return graph_hvp(self.grads, self.params, vectors.to(device=self.device, dtype=self.dtype))


def graph_hvp(
    grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], vectors: torch.Tensor
) -> torch.Tensor:
    """Double-backprop HVPs: rows of ``vectors`` ``(b, n)`` → rows of H·v ``(b, n)``; b > 1 is vectorised."""
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not live:  # the gradient does not depend on θ: H = 0 (e.g. a loss linear in θ)
        return torch.zeros_like(vectors)
    pieces = unflatten(vectors, params)
    batched = vectors.shape[0] > 1
    products = torch.autograd.grad(
        [grads[i] for i in live],
        list(params),
        grad_outputs=[pieces[i] if batched else pieces[i][0] for i in live],
        retain_graph=True,
        allow_unused=True,
        is_grads_batched=batched,
    )
    rows = vectors.shape[0]
    flat = torch.cat(
        [
            vectors.new_zeros(rows, p.numel()) if h is None else h.reshape(rows, p.numel())
            for h, p in zip(products, params, strict=True)
        ],
        dim=1,
    )
    return flat


def _quadratic_form_gradient(
    grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], pieces: Sequence[torch.Tensor]
) -> torch.Tensor:
    """∇θ⟨v, H v⟩ through one batch's gradient graph (kept for later products); zeros where H does not depend on θ."""
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    zeros = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
    if not live:
        return zeros
    products = torch.autograd.grad(
        [grads[i] for i in live],
        list(params),
        grad_outputs=[pieces[i] for i in live],
        create_graph=True,
        retain_graph=True,
        allow_unused=True,
    )
    form = sum((product * piece).sum() for product, piece in zip(products, pieces, strict=True) if product is not None)
    if not isinstance(form, torch.Tensor) or not form.requires_grad:  # H·v constant in θ: the third derivative is 0
        return zeros
    third = torch.autograd.grad(form, list(params), retain_graph=True, allow_unused=True)
    return torch.cat([_zeros_if_none(t, p).reshape(-1) for t, p in zip(third, params, strict=True)]).detach()


def _check_device(device: str | torch.device, params: list[torch.nn.Parameter]) -> torch.device:
    model_device = params[0].device
    if isinstance(device, str) and device == "auto":
        return model_device
    wanted = resolve_device(device)
    same = wanted.type == model_device.type and (wanted.index is None or wanted.index == model_device.index)
    if not same:
        raise ValueError(
            f"device={str(wanted)!r} but the model's parameters are on {model_device}; move the model first "
            "(model.to(device)) or pass device='auto'"
        )
    return model_device


def _zeros_if_none(grad: torch.Tensor | None, param: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(param) if grad is None else grad
