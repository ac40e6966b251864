"""EigenTracker: a warm-started estimate of the mini-batch Hessian's top eigenvector, refreshed on a schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from workbench._checks import check_bool, check_choice, check_float, check_int
from workbench.curvature import EigenResult, SymmetricOperator, power_iterate, ritz_refresh

#: Refresh rules: Rayleigh–Ritz on the warm-started Krylov space (default), and the published power iteration.
REFRESH_RULES = ("ritz", "power")
#: Hessian-vector products per refresh when ``power_iters`` is not given: the published 5 for power iteration; for
#: the Ritz rule the most it may take (it stops at ``DEFAULT_TOLERANCE``, after 3.2-4.1 products on average along
#: the benchmark runs; benchmarks/RESULTS.md, "Cheaper eigenvector tracking").
DEFAULT_PRODUCTS = {"ritz": 5, "power": 5}
#: The Ritz rule's default stopping tolerance: the top Ritz pair's relative residual ‖H y − θ y‖ / |θ|. With it,
#: v tracked v1 at least as closely as the published 5 power iterations (median, mean and worst case) on both
#: benchmark models at refresh periods 5 and 100; at 0.1 and 0.15 it did not everywhere (benchmarks/RESULTS.md).
DEFAULT_TOLERANCE = 0.05
#: The fewest products a Ritz refresh with a tolerance takes (one product gives no Krylov space to choose from).
MIN_RITZ_PRODUCTS = 2


class EigenTracker:
    """The top eigenvector v of the Hessian, re-estimated every ``freq`` steps from the previous estimate.

    Schedule (the published Eigen-SAM and X-SAM scripts): the refresh runs before step t, on step t's batch, when
    s % freq == 0 and s > 0, where s = t, or s = t mod ``epoch_length`` when given (the scripts count s with
    ``enumerate(train_loader)``, which restarts every epoch). So there is no vector during the first ``freq``
    steps, and with ``epoch_length`` no refresh at an epoch's first batch.

    Estimate, ``refresh="ritz"`` (default): Hessian-vector products spent on the Krylov space of the previous
    vector (Lanczos with full reorthogonalisation) until its top Ritz pair's relative residual ‖H y − θ y‖ / |θ|
    is at most ``refresh_tol`` (default 0.05; at least 2 products, at most ``power_iters``, default 5), whose top Ritz
    vector then takes one more power step for free from the stored products (``workbench.curvature.ritz_refresh``):
    v lies in the Krylov space the power iterate would reach with as many products, but is chosen in it by
    Rayleigh–Ritz. ``refresh_tol=0`` spends exactly ``power_iters`` products. ``refresh="power"`` (published, 5
    products): ``power_iters`` power iterations v ← Hv/‖Hv‖, one product each, warm-started from the previous
    vector. Both start the first refresh from a Gaussian vector drawn from ``seed``. Along training runs of both
    benchmark models, at refresh periods 5 and 100, the default Ritz rule kept v closer to v1 (from converged
    Lanczos on the same batch) than the published 5 power iterations, in median, mean and worst case, with 3.2-4.1
    products per refresh on average (benchmarks/RESULTS.md, "Cheaper eigenvector tracking"); hence the default.
    ``refresh="power", power_iters=5`` is the published estimate, exactly.

    Orientation: every refresh after the first returns v on the side of the previous vector (⟨v_new, v_old⟩ ≥ 0);
    the first keeps the side its seeded start gives it. The published code normalises Hv without re-orienting,
    which keeps the side just the same whenever v_oldᵀH^k v_old > 0 (always when the top eigenvalue is also the
    largest in magnitude, the case in which power iteration estimates v1 at all). The explicit rule is needed
    because a Ritz vector's sign is arbitrary.

    Eigenvalue: with ``refresh="power"`` and ``exact_eigenvalue=False`` (published, free), ``eigenvalue`` is the
    Rayleigh quotient ⟨u, Hu⟩ of the power iterate u *before* the stored v (v = Hu/‖Hu‖): both papers' code logs
    this number, one iteration behind the vector it keeps. With ``refresh="ritz"`` it is the top Ritz value (the
    Rayleigh quotient of the Ritz vector before its free step). ``exact_eigenvalue=True`` spends one more product
    per refresh so that ``eigenvalue`` is vᵀHv for the stored v itself (v itself is the same either way).

    Host synchronisation: a power refresh copies nothing to the host (the eigenvalue stays a device tensor,
    ``eigenvalue_tensor``, until ``eigenvalue`` is read); a Ritz refresh copies its small projected matrices once
    per tolerance check (from the second product on), or once with ``refresh_tol=0``.
    Memory while refreshing (beyond the gradient graph both keep): a Ritz refresh with at most m products holds
    2m flat vectors (its basis and their products, allocated at once), power iteration two.

    Args:
        freq: refresh period in steps, ≥ 1.
        power_iters: Hessian-vector products per refresh, ≥ 1: the most for ``refresh="ritz"`` (its Krylov
            dimension), power iterations for ``refresh="power"``; ``None`` (default): ``DEFAULT_PRODUCTS[refresh]``
            (5 for the Ritz rule, at most; 5 for power iteration as in both papers' code).
        refresh: ``"ritz"`` (default) or ``"power"`` (published).
        refresh_tol: the Ritz rule's stopping tolerance (relative residual) ≥ 0; ``None`` (default): 0.05
            (``DEFAULT_TOLERANCE``); 0: always ``power_iters`` products. Only for ``refresh="ritz"``.
        exact_eigenvalue: see above (default False: the published estimate, no extra product).
        seed: seed of the first refresh's random start vector (drawn on the CPU, the same on every device).
        epoch_length: steps per epoch when the schedule should restart every epoch as in the published scripts
            (``len(train_loader)``), ≥ 1; ``None`` counts steps globally.
    """

    def __init__(
        self,
        freq: int,
        power_iters: int | None = None,
        *,
        refresh: str = "ritz",
        refresh_tol: float | None = None,
        seed: int = 0,
        epoch_length: int | None = None,
        exact_eigenvalue: bool = False,
    ) -> None:
        self.freq = check_int("freq", freq, minimum=1)
        self.exact_eigenvalue = check_bool("exact_eigenvalue", exact_eigenvalue)
        self.rule = check_choice("refresh", refresh, REFRESH_RULES)
        products = DEFAULT_PRODUCTS[self.rule] if power_iters is None else power_iters
        self.power_iters = check_int("power_iters", products, minimum=1)
        if refresh_tol is not None and self.rule != "ritz":
            raise ValueError(
                "refresh_tol applies to refresh='ritz' only (power iteration takes a fixed budget), "
                f"got {refresh_tol!r}"
            )
        self.refresh_tol: float | None = None  # power iteration: a fixed budget
        if self.rule == "ritz":
            tolerance = DEFAULT_TOLERANCE if refresh_tol is None else refresh_tol
            self.refresh_tol = check_float("refresh_tol", tolerance, minimum=0.0)
        self.seed = check_int("seed", seed)
        self.epoch_length = None if epoch_length is None else check_int("epoch_length", epoch_length, minimum=1)
        self.vector: torch.Tensor | None = None
        self._eigenvalue = torch.tensor(math.nan, dtype=torch.float64)
        self.num_refreshes = 0
        self.num_hvps = 0

    @property
    def eigenvalue(self) -> float:
        """The estimate λ from the last refresh (NaN before any), as a float (reading it synchronises a GPU)."""
        return float(self._eigenvalue)

    def eigenvalue_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The estimate λ as a 0-dim tensor with ``like``'s device and dtype (moved there once, then kept)."""
        if self._eigenvalue.device != like.device:
            self._eigenvalue = self._eigenvalue.to(device=like.device, dtype=like.dtype)
        return self._eigenvalue.to(dtype=like.dtype)

    def due(self, step: int) -> bool:
        """Whether a refresh runs before step ``step`` (0-based count of the steps already taken)."""
        position = step if self.epoch_length is None else step % self.epoch_length
        return position > 0 and position % self.freq == 0

    def refresh(self, op: SymmetricOperator) -> EigenResult:
        """Re-estimate v on ``op`` by the tracker's rule, warm-started from the previous v; store it and return the
        rule's result (``EigenResult``)."""
        if self.vector is not None and self.vector.numel() != op.num_params:
            raise ValueError(
                f"the tracked eigenvector has {self.vector.numel()} entries but the operator acts on "
                f"{op.num_params} parameters; the parameter set changed since the last refresh"
            )
        if self.rule == "power":
            result = power_iterate(op, self.vector, self.power_iters, seed=self.seed)
        else:
            tol = self.refresh_tol or None  # 0: a fixed budget
            result = ritz_refresh(
                op, self.vector, self.power_iters, keep=1, seed=self.seed, tol=tol, min_products=MIN_RITZ_PRODUCTS
            )
        vector = result.eigenvectors[0].detach()
        if self.vector is not None:  # keep the previous vector's side, without a host round trip
            vector = torch.where(torch.dot(vector, self.vector.to(vector)) < 0, -vector, vector)
        self.vector = vector
        self._eigenvalue = result.eigenvalues[0].detach()
        self.num_refreshes += 1
        self.num_hvps += result.num_hvps
        if self.exact_eigenvalue:
            product = op.batched_matvec(self.vector[None])[0]
            self._eigenvalue = torch.dot(self.vector.to(product), product)
            self.num_hvps += 1
        return result

    def set_vector(self, vector: torch.Tensor, eigenvalue: float = math.nan) -> None:
        """Use ``vector`` (flat ``(n,)``, normalised here) as the current estimate, e.g. a precomputed v1.

        Raises:
            ValueError: naming ``vector`` when it is not a non-zero flat tensor.
        """
        if not isinstance(vector, torch.Tensor) or vector.dim() != 1 or not bool(vector.norm() > 0):
            raise ValueError("vector must be a non-zero flat tensor of shape (n,), n the number of parameters")
        self.vector = (vector / vector.norm()).detach()
        self._eigenvalue = torch.tensor(float(eigenvalue), dtype=torch.float64)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue identically (the vector, counts and seed)."""
        return {
            "vector": None if self.vector is None else self.vector.clone(),
            "eigenvalue": self.eigenvalue,
            "num_refreshes": self.num_refreshes,
            "num_hvps": self.num_hvps,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any], *, like: torch.Tensor | None = None) -> None:
        """Restore ``state_dict()``'s output; the vector moves to ``like``'s device and dtype when given.

        Raises:
            ValueError: naming ``state`` when keys are missing.
        """
        missing = {"vector", "eigenvalue", "num_refreshes", "num_hvps", "seed"} - set(state)
        if missing:
            raise ValueError(f"state is missing the tracker entries {sorted(missing)}")
        vector = state["vector"]
        if vector is not None and like is not None:
            vector = vector.to(device=like.device, dtype=like.dtype)
        self.vector = None if vector is None else vector.clone()
        self._eigenvalue = torch.tensor(float(state["eigenvalue"]), dtype=torch.float64)
        self.num_refreshes = int(state["num_refreshes"])
        self.num_hvps = int(state["num_hvps"])
        self.seed = int(state["seed"])
