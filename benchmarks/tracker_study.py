"""How well cheaper eigenvector trackers follow v1 along a real training run, and what each costs.

Along a SAM training run (MNIST-1D with the library's 1-D CNN, or CIFAR-shaped images with its 2-D CNN; both
with BatchNorm), every ``freq`` steps each refresh rule re-estimates the top Hessian eigenvector on that step's
batch (eval mode, exact double-backprop products, as the optimizers' refresh), warm-started from its own
previous estimate, and is compared with v1 from converged Lanczos (``top_eigenpairs``, tolerance 1e-6) on the
same batch Hessian: misalignment 1 − |cos∠(v, v1)| (float64). The first refresh is cold (seeded random start)
and left out of the statistics.

Cost: the time of a refresh with m products is one graph-building gradient pass plus m products; both, and a
SAM step, are timed in this process (CPU time, interleaved, medians), which gives each rule's predicted step
cost relative to SAM at the given frequency, 1 + (graph + m · product) / (freq · SAM step).

Also measured (``--finite-difference``): the relative error of finite-difference products
(∇L(θ + h·v) − ∇L(θ)) / h and of central ones against the exact product H v1, over step sizes h, in float32 and
float64 -- what a tracker reusing gradients instead of double backprop would compute.

Run: ``python benchmarks/tracker_study.py --model mnist1d --freq 5 --refreshes 20``. Records: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.workloads import Workload, make_workload
from workbench.curvature import HessianOperator, SymmetricOperator, power_iterate, ritz_refresh, top_eigenpairs
from workbench.modes import eval_mode
from workbench.optim import SAM
from workbench.optim.tracker import DEFAULT_PRODUCTS, DEFAULT_TOLERANCE, MIN_RITZ_PRODUCTS
from workbench.params import flatten, unflatten

BATCH = 128
BASE = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}

#: (operator, previous state) -> (v, the state to warm-start the next refresh from, eigenvalue estimate, products)
Rule = Callable[[SymmetricOperator, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor, float, int]]


def power_rule(products: int) -> Rule:
    """The published refresh: ``products`` power iterations from the previous vector."""

    def refresh(op: SymmetricOperator, previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, float, int]:
        result = power_iterate(op, None if previous is None else previous[0], products)
        return result.eigenvectors[0], result.eigenvectors, float(result.eigenvalues[0]), result.num_hvps

    return refresh


def ritz_rule(products: int, starts: int, tol: float | None = None) -> Rule:
    """``refresh="ritz"``: Rayleigh–Ritz on ``starts`` previous Ritz vectors (one: Lanczos from the previous v, the
    tracker's rule; two: also the previous second Ritz vector) plus the Krylov vectors of the first, and the free
    power step; with ``tol``, stopped once the top Ritz pair's relative residual is at most ``tol`` (at least
    ``MIN_RITZ_PRODUCTS``, at most ``products`` products: the tracker's default rule with its tolerance)."""

    def refresh(op: SymmetricOperator, previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, float, int]:
        init = None if previous is None else previous[:starts]
        result = ritz_refresh(op, init, products, keep=max(starts, 1), tol=tol, min_products=MIN_RITZ_PRODUCTS)
        return result.eigenvectors[0], result.eigenvectors, float(result.eigenvalues[0]), result.num_hvps

    return refresh


RULES: dict[str, Rule] = {
    "power 5 (published)": power_rule(5),
    "power 3": power_rule(3),
    "power 2": power_rule(2),
    "ritz 2": ritz_rule(2, 1),
    "ritz 3": ritz_rule(3, 1),
    "ritz 4": ritz_rule(4, 1),
    "ritz 2, two starts": ritz_rule(2, 2),
    "ritz 3, two starts": ritz_rule(3, 2),
    "ritz 4, two starts": ritz_rule(4, 2),
    "ritz ≤ 6, tol 0.15": ritz_rule(6, 1, 0.15),
    "ritz ≤ 6, tol 0.1": ritz_rule(6, 1, 0.1),
    "ritz ≤ 6, tol 0.05": ritz_rule(6, 1, 0.05),
    f"ritz ≤ {DEFAULT_PRODUCTS['ritz']}, tol {DEFAULT_TOLERANCE} (default)": ritz_rule(
        DEFAULT_PRODUCTS["ritz"], 1, DEFAULT_TOLERANCE
    ),
}


def closure_for(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        return loss

    return closure


@dataclass
class Tally:
    cosines: list[float] = field(default_factory=list)
    eigenvalue_errors: list[float] = field(default_factory=list)
    products: list[int] = field(default_factory=list)


def alignment_study(workload: Workload, freq: int, refreshes: int, warmup: int, seed: int) -> dict[str, Tally]:
    model = workload.model
    optimizer = SAM(model.parameters(), model=model, **BASE)
    states: dict[str, torch.Tensor | None] = dict.fromkeys(RULES)
    tallies = {name: Tally() for name in RULES}
    reference: torch.Tensor | None = None
    last = warmup + freq * (refreshes - 1)
    for step in range(last + 1):
        batch = workload.batch(BATCH, seed + step)
        if step >= warmup and (step - warmup) % freq == 0:
            op = HessianOperator(model, F.cross_entropy, batch)  # eval mode, as the optimizers' refresh
            exact = top_eigenpairs(op, k=1, tol=1e-6, max_iter=3000, init=reference)
            reference, top = exact.eigenvectors[0].double(), float(exact.eigenvalues[0])
            for name, rule in RULES.items():
                vector, states[name], eigenvalue, products = rule(op, states[name])
                tallies[name].cosines.append(float(torch.dot(vector.double(), reference).abs()))
                tallies[name].eigenvalue_errors.append(abs(eigenvalue / top - 1))
                tallies[name].products.append(products)
            print(f"  step {step}: λ1 = {top:.4g} ({exact.num_hvps} HVPs), loss {optimizer_loss(model, batch):.3f}")
        if step < last:
            optimizer.step(closure_for(model, batch))
    return tallies


def optimizer_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad(), eval_mode(model):
        return float(F.cross_entropy(model(batch[0]), batch[1]))


def time_parts(workload: Workload, rounds: int, seed: int) -> dict[str, float]:
    """Median CPU seconds of a SAM step, a graph-building gradient pass (eval mode) and one product."""
    model = copy.deepcopy(workload.model)
    params = list(model.parameters())
    batch = workload.batch(BATCH, seed)
    optimizer = SAM(model.parameters(), model=model, **BASE)
    vectors = [torch.randn_like(p) for p in params]
    grads: list[torch.Tensor] = []

    def sam() -> None:
        optimizer.step(closure_for(model, batch))

    def graph() -> None:
        with eval_mode(model), torch.enable_grad():
            loss = F.cross_entropy(model(batch[0]), batch[1])
            grads[:] = torch.autograd.grad(loss, params, create_graph=True)

    def product() -> None:
        torch.autograd.grad(grads, params, vectors, retain_graph=True)

    parts = {"SAM step": sam, "graph pass": graph, "product": product}
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    for round_index in range(rounds + 1):
        for name, part in parts.items():
            start = time.process_time()
            for _ in range(3):
                part()
            if round_index:
                seconds[name].append((time.process_time() - start) / 3)
    for name, values in seconds.items():
        print(
            f"  {name}: median {1e3 * statistics.median(values):.1f} CPU ms (spread {1e3 * min(values):.1f}"
            f"-{1e3 * max(values):.1f})"
        )
    return {name: statistics.median(values) for name, values in seconds.items()}


def gradient_at(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], point: torch.Tensor) -> torch.Tensor:
    """∇L at the flat parameters ``point`` (written into ``model``), eval mode, as a flat tensor."""
    params = list(model.parameters())
    with torch.no_grad():
        for param, piece in zip(params, unflatten(point, params), strict=True):
            param.copy_(piece)
    with eval_mode(model), torch.enable_grad():
        return flatten(torch.autograd.grad(F.cross_entropy(model(batch[0]), batch[1]), params))


def finite_difference_errors(workload: Workload, steps: int, seed: int) -> None:
    """Relative error of finite-difference products against H v1 after ``steps`` SAM steps, float32 and float64."""
    model = workload.model
    optimizer = SAM(model.parameters(), model=model, **BASE)
    for step in range(steps):
        optimizer.step(closure_for(model, workload.batch(BATCH, seed + step)))
    inputs, targets = workload.batch(BATCH, seed + steps)
    for dtype in (torch.float32, torch.float64):
        twin = copy.deepcopy(model).to(dtype)
        batch = (inputs.to(dtype), targets)
        op = HessianOperator(twin, F.cross_entropy, batch)
        top = top_eigenpairs(op, k=1, tol=1e-7, max_iter=3000).eigenvectors[0]
        exact = op.matvec(top)
        theta = flatten([p.detach() for p in twin.parameters()]).clone()
        base = gradient_at(twin, batch, theta)
        print(
            f"  {dtype}: ‖θ‖ = {float(theta.norm()):.3g}, ‖g‖ = {float(base.norm()):.3g}, ‖H v1‖ = "
            f"{float(exact.norm()):.4g}"
        )
        for h in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
            forward = (gradient_at(twin, batch, theta + h * top) - base) / h
            central = (gradient_at(twin, batch, theta + h * top) - gradient_at(twin, batch, theta - h * top)) / (2 * h)
            errors = [float((estimate - exact).norm() / exact.norm()) for estimate in (forward, central)]
            print(f"    h = {h:.0e}: forward {errors[0]:.2e}, central {errors[1]:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mnist1d", "cifar-shaped"), default="mnist1d")
    parser.add_argument("--freq", type=int, default=5, help="refresh period in SAM steps")
    parser.add_argument("--refreshes", type=int, default=20, help="refreshes (the first is cold)")
    parser.add_argument("--warmup", type=int, default=100, help="SAM steps before the first refresh")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finite-difference", action="store_true", help="only the finite-difference error table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workload = make_workload(args.model, args.seed)
    params = sum(p.numel() for p in workload.model.parameters())
    print(f"torch {torch.__version__}, CPU, 1 thread; {workload.description}, {params} parameters, batch {BATCH}")
    if args.finite_difference:
        finite_difference_errors(workload, args.warmup, args.seed)
        return
    costs = time_parts(workload, args.rounds, args.seed)
    print(f"SAM trajectory, refresh every {args.freq} steps from step {args.warmup}, {args.refreshes} refreshes")
    tallies = alignment_study(workload, args.freq, args.refreshes, args.warmup, args.seed)
    print(
        f"\n| rule | products (mean) | predicted × SAM at freq {args.freq} | median 1 − \\|cos\\| | mean 1 − \\|cos\\| "
        "| worst 1 − \\|cos\\| | median \\|λ/λ1 − 1\\| |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in RULES:
        tally = tallies[name]
        misalignment = [1 - value for value in tally.cosines[1:]]
        products = statistics.fmean(tally.products[1:])
        ratio = 1 + (costs["graph pass"] + products * costs["product"]) / (args.freq * costs["SAM step"])
        print(
            f"| {name} | {products:.2f} | {ratio:.3f} | {statistics.median(misalignment):.1e} | "
            f"{statistics.fmean(misalignment):.1e} | {max(misalignment):.1e} | "
            f"{statistics.median(tally.eigenvalue_errors[1:]):.1e} |"
        )


if __name__ == "__main__":
    main()
