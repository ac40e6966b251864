"""Exact Hessian-vector products from an ordinary LBFGS-style closure (one that calls ``loss.backward()``).

The closure is run under a ``TorchFunctionMode`` that rewrites its ``Tensor.backward`` /
``torch.autograd.backward`` calls to ``create_graph=True, retain_graph=True``. Torch-function modes live on a
per-thread stack, so only the calling thread is affected and nothing in torch is patched. The parameters'
``.grad`` then carry their graph, each H·v is one more backward pass through it
(``workbench.curvature.GradientGraphOperator``), and on exit every ``.grad`` is set back to ``None``: that
breaks the parameter → grad → graph → parameter cycle, so the graph is freed at once by reference counting. Other
tensors the pass gave a gradient (found from the nodes its backward calls started from) keep it without the graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from workbench.curvature import GradientGraphOperator

_BACKWARD_FUNCTIONS = (torch.Tensor.backward, torch.autograd.backward)


class _BackwardWithGraph(TorchFunctionMode):
    """Make every backward call in this thread build the gradient's graph and keep the forward graph; ``roots``
    collects the graph nodes each call started from."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[Any] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _BACKWARD_FUNCTIONS:
            kwargs.update(create_graph=True, retain_graph=True)
            tensors = args[0] if args else kwargs.get("tensors", kwargs.get("self"))
            tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors or ())
            nodes = [tensor.grad_fn if isinstance(tensor, torch.Tensor) else getattr(tensor, "node", None)
                     for tensor in tensors]  # a torch.autograd.graph.GradientEdge names its node
            self.roots += [node for node in nodes if node is not None]
        return func(*args, **kwargs)


@contextmanager
def backward_with_graph() -> Iterator[list[Any]]:
    """Within the block, ``loss.backward()`` in this thread behaves as ``loss.backward(create_graph=True)``; yields
    the list of graph nodes the backward calls start from (filled as they run).

    The caller must set the parameters' ``.grad`` to ``None`` afterwards (``closure_hessian`` does).
    """
    with warnings.catch_warnings():
        # torch warns that .grad with a graph forms a reference cycle; closure_hessian breaks it on exit.
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True", category=UserWarning)
        with _BackwardWithGraph() as mode:
            yield mode.roots


@contextmanager
def closure_hessian(
    closure: Callable[[], Any],
    params: Sequence[torch.Tensor],
    *,
    others: Sequence[torch.Tensor] = (),
    keep_others: bool = False,
) -> Iterator[GradientGraphOperator]:
    """Run ``closure`` once with graph-building backward; yield H, the Hessian of its loss, as an operator.

    H is a ``GradientGraphOperator`` over ``params`` (products exact up to floating point). On exit, every
    parameter's ``.grad`` is ``None`` and no tensor keeps a gradient that carries the pass's graph (which would
    keep the graph alive for good):

    * ``others`` (e.g. the model's parameters outside ``params``) get back the ``.grad`` they had before, or, with
      ``keep_others`` and no error, keep this pass's, detached;
    * every other tensor the closure's backward calls reached (e.g. an input it differentiates) keeps its
      gradient, detached.

    Raises:
        ValueError: naming ``closure`` when it returns no loss, leaves every gradient empty, or its gradients
            carry no graph (it did not call ``backward`` on a loss that depends on the parameters).
    """
    for param in params:
        param.grad = None
    saved = [(tensor, tensor.grad) for tensor in others]
    roots: list[Any] = []
    completed = False
    try:
        with torch.enable_grad(), backward_with_graph() as roots:
            loss = closure()
        grads = [param.grad for param in params]
        check_closure_result(loss, grads)
        if not any(grad is not None and grad.requires_grad for grad in grads):
            raise ValueError(
                "closure's gradients carry no graph, so Hessian-vector products are impossible: the closure must "
                "call loss.backward() (or torch.autograd.backward) on a loss that is twice differentiable in the "
                "parameters"
            )
        yield GradientGraphOperator(grads, params)
        completed = True
    finally:
        for param in params:
            param.grad = None
        kept = keep_others and completed
        if not kept:
            for tensor, gradient in saved:
                tensor.grad = gradient  # as before, graph and all
        restored = set() if kept else {id(tensor) for tensor in others}
        for tensor in _graph_leaves(roots) + (list(others) if kept else []):
            if id(tensor) not in restored and tensor.grad is not None and tensor.grad.requires_grad:
                tensor.grad = tensor.grad.detach()


def _graph_leaves(roots: list[Any]) -> list[torch.Tensor]:
    """The leaf tensors that backward passes from the graph nodes ``roots`` accumulate gradients into (their
    AccumulateGrad nodes), each once, found by walking the autograd graph (one visit per node)."""
    leaves, pending = [], list(roots)
    seen = {id(node): node for node in roots}  # holds every node visited, so that no id is reused meanwhile
    while pending:
        node = pending.pop()
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        for following, _ in node.next_functions:
            if following is not None and id(following) not in seen:
                seen[id(following)] = following
                pending.append(following)
    return leaves


def check_closure_result(loss: Any, grads: Sequence[torch.Tensor | None]) -> None:
    """Check what a closure left behind: a returned loss and at least one gradient.

    Raises:
        ValueError: naming ``closure`` and what it must do.
    """
    if loss is None:
        raise ValueError(
            "closure returned None; it must compute the loss on the current batch, call loss.backward() and "
            "return the loss (like a torch.optim.LBFGS closure)"
        )
    if all(grad is None for grad in grads):
        raise ValueError(
            "closure left every parameter's gradient empty; it must call loss.backward() before returning the loss"
        )
