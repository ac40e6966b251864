"""PyHessian's ``hessian`` class (Yao et al., 2020) on the workbench's curvature engine, for a one-line switch.

``from pyhessian import hessian`` becomes ``from workbench.compat import hessian``; the constructor, the three
methods, their argument names and defaults and the shapes of what they return stay PyHessian's. The numbers come
from ``workbench.curvature``: thick-restart Lanczos instead of power iteration with deflation, Hutch++ instead of
Hutchinson, and a stochastic Lanczos quadrature that runs on PyTorch 2 (PyHessian's ``density`` calls
``torch.eig``, removed from PyTorch). Where an argument has to mean something else, its method's docstring says
how.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch

from workbench._checks import check_bool, check_float, check_int
from workbench.curvature import HessianOperator, hessian_trace, spectral_density, top_eigenpairs
from workbench.inputs import LossFn, is_batch
from workbench.params import unflatten

#: Hutch++ needs at least this many products (a third sketches, a third projects, a third probes).
MIN_TRACE_ITER = 6


class hessian:  # PyHessian's lower-case class name, kept so that only the import line changes
    """The Hessian of ``criterion(model(inputs), targets)`` w.r.t. the model's trainable parameters.

    Args:
        model: the network. It is evaluated in eval mode (BatchNorm on its running statistics, dropout off) as
            in PyHessian; unlike PyHessian, its own train/eval flag is restored afterwards and ``.grad`` is left
            untouched.
        criterion: ``criterion(outputs, targets) -> scalar``, a mean-reduced loss.
        data: one ``(inputs, targets)`` batch; or
        dataloader: an iterable of such batches, for the Hessian of the whole data set (each batch weighted by
            its size, as PyHessian does). Its batches are read once and kept, so every product sees the same
            operator even when the loader shuffles or augments. Exactly one of ``data`` and ``dataloader``.
        cuda: True (PyHessian's default) computes on CUDA, where the model must already be; on a machine without
            CUDA it falls back to the CPU with a warning instead of failing. False computes on the CPU.

    Random start vectors are seeded from torch's global generator, so ``torch.manual_seed`` makes a call
    repeatable, as with PyHessian.

    Attributes:
        model, criterion: as given.
        full_dataset: True when built from ``dataloader``.
        device: ``"cuda"`` or ``"cpu"``, the device actually used.
        params: the trainable parameters, in ``model.parameters()`` order (the eigenvectors' layout).
        operator: the ``workbench.curvature.HessianOperator`` behind it; ``operator.num_hvps`` counts the
            Hessian-vector products spent so far.

    Raises:
        ValueError: when not exactly one of ``data`` and ``dataloader`` is given, ``data`` is not an
            ``(inputs, targets)`` pair of tensors, or the model is not on the device ``cuda`` asks for.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        criterion: LossFn,
        data: tuple[torch.Tensor, torch.Tensor] | None = None,
        dataloader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        cuda: bool = True,
    ) -> None:
        if (data is None) == (dataloader is None):
            raise ValueError(
                "pass exactly one of data= (one (inputs, targets) batch) and dataloader= (an iterable of batches)"
            )
        if data is not None and not is_batch(data):
            raise ValueError(f"data must be one (inputs, targets) pair of tensors, got {type(data).__name__}")
        self.model = model
        self.criterion = criterion
        self.full_dataset = dataloader is not None
        self.device = _device(check_bool("cuda", cuda))
        self.params = [param for param in model.parameters() if param.requires_grad]
        _check_model_device(self.params, self.device)
        self.operator = HessianOperator(model, criterion, data if data is not None else dataloader)

    def eigenvalues(
        self, maxIter: int = 100, tol: float = 1e-3, top_n: int = 1
    ) -> tuple[list[float], list[list[torch.Tensor]]]:
        """The ``top_n`` largest eigenvalues and their unit eigenvectors, by thick-restart Lanczos.

        Args:
            maxIter: PyHessian's limit of power iterations per eigenvalue; here the Lanczos budget is
                ``maxIter · top_n`` Hessian-vector products in all (the same cap), usually far from reached.
            tol: here a bound on the error, not on the change between iterations: Lanczos stops once every pair
                has ‖Hv − λv‖ ≤ tol·|λ|, which guarantees an eigenvalue of H within tol·|λ| and in practice
                gives an error near (tol·λ)²/gap. PyHessian stops when two successive estimates differ by less
                than tol relative, which can happen well before its estimate is within tol of the eigenvalue.
            top_n: number of eigenpairs, in [1, number of parameters].

        Returns:
            ``(eigenvalues, eigenvectors)`` as PyHessian returns them: a list of ``top_n`` floats in descending
            order, and a list of ``top_n`` eigenvectors, each a list of tensors shaped like ``params`` (unit
            norm over all of them). These are the algebraically largest eigenvalues, the top of the spectrum;
            PyHessian's power iteration finds the largest in magnitude, the same ones unless a negative
            eigenvalue outweighs them.

        Raises:
            ValueError: naming the argument when it is out of range. A budget spent before ``tol`` is reached
            gives a RuntimeWarning with the residual reached, and the estimates so far.
        """
        max_iter = check_int("maxIter", maxIter, minimum=1)
        tol = check_float("tol", tol, minimum=0.0)
        top_n = check_int("top_n", top_n, minimum=1, maximum=self.operator.num_params)
        result = top_eigenpairs(self.operator, k=top_n, tol=tol, max_iter=max_iter * top_n, seed=_global_seed())
        vectors = [[piece.detach() for piece in unflatten(row, self.params)] for row in result.eigenvectors]
        return [float(value) for value in result.eigenvalues], vectors

    def trace(self, maxIter: int = 100, tol: float = 1e-3) -> list[float]:
        """Per-probe estimates of tr(H), by Hutch++ with ``maxIter`` Hessian-vector products.

        Args:
            maxIter: the budget of Hessian-vector products, ≥ 6 (PyHessian's limit of Hutchinson probes). Hutch++
                spends a third on a sketch Q of H's dominant range, a third on tr(QᵀHQ) and a third on probes of
                the deflated rest, and always spends all of it.
            tol: checked (≥ 0) and not used. PyHessian stops once the running mean changes by less than tol
                relative, which ends at a random probe and bounds nothing; the error of this estimate is its
                standard error instead, the spread of the returned list over √(its length).

        Returns:
            A list of floats as PyHessian returns, one estimate of tr(H) per remainder probe z,
            tr(QᵀHQ) + zᵀ(I−QQᵀ)H(I−QQᵀ)z (about ``maxIter / 3`` of them); ``np.mean`` of it is the Hutch++
            estimate.

        Raises:
            ValueError: naming the argument when it is out of range.
        """
        budget = check_int("maxIter", maxIter, minimum=MIN_TRACE_ITER)
        check_float("tol", tol, minimum=0.0)
        return list(hessian_trace(self.operator, method="hutch++", num_samples=budget, seed=_global_seed()).samples)

    def density(self, iter: int = 100, n_v: int = 1) -> tuple[list[list[float]], list[list[float]]]:
        """The eigenvalue density by stochastic Lanczos quadrature: ``n_v`` runs of ``iter`` Lanczos steps.

        Args:
            iter: Lanczos steps (Hessian-vector products) per run, ≥ 1; capped at the number of parameters.
            n_v: number of runs (random start vectors), ≥ 1. All runs go through the model together.

        Returns:
            ``(eigen_list_full, weight_list_full)`` as PyHessian returns them: per run, ``min(iter, n)`` quadrature
            nodes (Ritz values, units of H's eigenvalues) and their weights (summing to 1), as lists of floats,
            so ``np.array`` of either is ``(n_v, min(iter, n))``. A run that reaches an invariant subspace early
            fills its remaining slots with node 0 and weight 0, which add nothing to a density. The start
            vectors are Gaussian (PyHessian's are Rademacher); both give unbiased estimates.

        Raises:
            ValueError: naming the argument when it is out of range.
        """
        steps = check_int("iter", iter, minimum=1)
        runs = check_int("n_v", n_v, minimum=1)
        result = spectral_density(self.operator, num_runs=runs, lanczos_steps=steps, seed=_global_seed())
        return result.nodes.tolist(), result.weights.tolist()


def _device(cuda: bool) -> str:
    if cuda and not torch.cuda.is_available():
        warnings.warn(
            "cuda=True but CUDA is not available: computing the Hessian on the CPU", RuntimeWarning, stacklevel=3
        )
        return "cpu"
    return "cuda" if cuda else "cpu"


def _check_model_device(params: list[torch.nn.Parameter], device: str) -> None:
    if not params:
        raise ValueError("model has no parameters that require grad")
    found = params[0].device.type
    if found != device:
        hint = "model.cuda()" if device == "cuda" else "model.cpu(), or pass cuda=True"
        raise ValueError(f"cuda={device == 'cuda'} asks for {device}, but the model is on {found}: call {hint}")


def _global_seed() -> int:
    """A seed drawn from torch's global generator, so that ``torch.manual_seed`` governs the random vectors."""
    return int(torch.randint(0, 2**31 - 1, ()).item())
