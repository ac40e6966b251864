"""Step time of SGD, SAM, Eigen-SAM and X-SAM on a small CNN, and how a warm-started refresh reaches v1.

Part 1 (overhead): every optimizer trains its own copy of one CNN (three conv + BatchNorm layers, CIFAR-shaped
batch of 128) on one fixed batch, with ``model=`` given as in the published setting. A timed window is a
multiple of the optimizer's ``freq`` (so it holds exactly window/freq refreshes); the windows of all optimizers
alternate in rounds, after a warm-up round that also takes every tracker past its first refresh. Times are the
process's CPU time with one torch thread: the machine this was written on is shared, and its wall-clock times
swung threefold with other jobs' load, while CPU time measures the work itself. Printed per optimizer: median CPU
milliseconds per step and the medians of the per-round ratios to SGD and to SAM. A refresh is also timed alone,
which gives each eigenvector method's floor, 1 + refresh / (freq · SAM step), the ratio to SAM it would have if
it added nothing but the refreshes.

Part 2 (refresh study): along a SAM trajectory, every refresh rule is run every ``freq`` steps on the step's
batch, warm-started from its own previous vector, and compared with v1 from ``top_eigenpairs`` (tolerance 1e-5)
on the same batch's Hessian: misalignment 1 − |cos∠(v, v1)| and the relative error of λ.

Part 1b (``--part paired``): each eigenvector method against SAM with their steps alternating one by one, over
two refresh periods per repeat, so that both see the same load; the most robust ratio on a shared machine. On the
shared workloads both step through the same 64 batches in turn (a new batch every step, as in training), and the
Hessian-vector products each refresh took are printed (a refresh with a tolerance takes fewer on a familiar batch).
Where the model has no BatchNorm or dropout, the first pass serves the refresh ("Shared first pass" in
``SharpnessAware``); the "own refresh pass" rows give the refresh its own pass, as on models with BatchNorm.

``--workload mnist1d`` or ``cifar-shaped`` times the steps on the shared benchmark workloads
(``benchmarks/workloads.py``, batch 128) instead of this script's own CNN on random images.

Run: ``python benchmarks/optimizer_overhead.py`` (about an hour on a loaded 2-core machine; ``--quick``: a smoke run).
Records: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.workloads import WORKLOADS, make_workload
from workbench.curvature import HessianOperator, SymmetricOperator, power_iterate, top_eigenpairs
from workbench.optim import SAM, XSAM, EigenSAM, SharpnessAware
from workbench.optim.rules import cosine
from workbench.optim.tracker import DEFAULT_PRODUCTS, DEFAULT_TOLERANCE

BATCH = 128
CLASSES = 10


class SmallCNN(nn.Module):
    """conv-BN-ReLU-pool ×3 (16, 32, 64 channels) → linear, on 3×32×32 images: 34,058 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(3, 16),
            *_block(16, 32),
            *_block(32, 64),
        )
        self.head = nn.Linear(64 * 4 * 4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _block(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)]


def make_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(BATCH, 3, 32, 32, generator=generator)
    labels = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    return images, labels


def make_closure(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor] | Callable[[], tuple[torch.Tensor, torch.Tensor]]
) -> Callable[[], torch.Tensor]:
    """The closure of ``model`` on ``batch``: one fixed batch, or a function returning the current one."""
    current = batch if callable(batch) else lambda: batch

    def closure() -> torch.Tensor:
        images, labels = current()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return loss

    return closure


# -- part 1: overhead -----------------------------------------------------------------------------------------

BASE = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
WINDOW = 20  # steps per timed window, a multiple of every freq below except Eigen-SAM's (which uses 100)

# name: (optimizer class or None for plain SGD, its keyword arguments, steps per timed window)
OPTIMIZERS: dict[str, tuple[type[SharpnessAware] | None, dict[str, int | str | float], int]] = {
    "SGD": (None, {}, WINDOW),
    "SAM": (SAM, {}, WINDOW),
    "Eigen-SAM (freq 100)": (EigenSAM, {"refresh": "power"}, 100),
    "Eigen-SAM (freq 100, 3 iters)": (EigenSAM, {"refresh": "power", "power_iters": 3}, 100),
    "Eigen-SAM (freq 100, ritz 4)": (EigenSAM, {"power_iters": 4, "refresh_tol": 0.0}, 100),
    "Eigen-SAM (freq 100, ritz tol 0.05: default)": (EigenSAM, {}, 100),
    "X-SAM (freq 5)": (XSAM, {"refresh": "power"}, WINDOW),
    "X-SAM (freq 10)": (XSAM, {"refresh": "power", "freq": 10}, WINDOW),
    "X-SAM (freq 5, ritz 4)": (XSAM, {"power_iters": 4, "refresh_tol": 0.0}, WINDOW),
    "X-SAM (freq 5, ritz tol 0.05: default)": (XSAM, {}, WINDOW),
}
TRACKING = (EigenSAM, XSAM)
#: Batches the paired comparison steps through in turn (a new batch every step, as in training), so that a refresh
#: that stops at a tolerance sees a new batch's Hessian as it would along a real run.
PAIRED_BATCHES = 64
#: The steps alone, without refreshes (v set once at random), for the paired comparison.
NO_REFRESH = 10**9
#: A fixed refresh with its own pass, for models whose first pass serves the refresh (no BatchNorm, no dropout).
OWN_REFRESH_PASS = {
    "X-SAM (freq 5, ritz 4, own refresh pass)": (XSAM, {"power_iters": 4, "refresh_tol": 0.0}),
    "Eigen-SAM (freq 100, ritz 4, own refresh pass)": (EigenSAM, {"power_iters": 4, "refresh_tol": 0.0}),
}
STEPS_ONLY: dict[str, tuple[type[SharpnessAware], dict[str, int | str]]] = {
    "Eigen-SAM step alone (v given, no refresh)": (EigenSAM, {"freq": NO_REFRESH}),
    "X-SAM step alone (v given, no refresh)": (XSAM, {"freq": NO_REFRESH}),
}


def build_step(
    template: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor] | Callable[[], tuple[torch.Tensor, torch.Tensor]],
    factory: type[SharpnessAware] | None,
    kwargs: dict,
    *,
    own_refresh_pass: bool = False,
) -> tuple[Callable[[], None], torch.optim.Optimizer]:
    """A function taking one optimizer step on a fresh copy of ``template`` (on ``batch``, as ``make_closure``
    takes it), and the optimizer; ``own_refresh_pass`` gives the refresh its own pass (``refresh_closure``) even
    where the first pass could serve it."""
    model = copy.deepcopy(template)
    closure = make_closure(model, batch)
    if factory is None:
        sgd = torch.optim.SGD(model.parameters(), **BASE)

        def sgd_step() -> None:
            sgd.zero_grad()
            closure()
            sgd.step()

        return sgd_step, sgd
    optimizer = factory(model.parameters(), model=model, **BASE, **kwargs)
    return lambda: optimizer.step(closure, refresh_closure=closure if own_refresh_pass else None), optimizer


def measure_overhead(rounds: int, quick: bool, workload: str) -> None:
    torch.manual_seed(0)
    if workload == "small-cnn":
        template, batch = SmallCNN(), make_batch(0)
    else:
        shared = make_workload(workload)
        template, batch = shared.model, shared.batch(BATCH, seed=0)
    steps = {name: build_step(template, batch, factory, kwargs) for name, (factory, kwargs, _) in OPTIMIZERS.items()}
    budgets = sorted({_rule(kwargs) for factory, kwargs, _ in OPTIMIZERS.values() if factory})
    refreshers = {
        (rule, iters, tol): EigenSAM(
            template.parameters(), refresh=rule, power_iters=iters, refresh_tol=tol, model=template
        )
        for rule, iters, tol in budgets
    }
    seconds: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    refresh_seconds: dict[tuple[str, int, float | None], list[float]] = {budget: [] for budget in budgets}
    for round_index in range(rounds + 1):
        for name, (step, _) in steps.items():
            window = 2 if quick else OPTIMIZERS[name][2]
            start = time.process_time()
            for _ in range(window):
                step()
            if round_index > 0:
                seconds[name].append((time.process_time() - start) / window)
        for iters, refresher in refreshers.items():  # refreshes alone, on the template (it never steps)
            start = time.process_time()
            refresher.refresh_eigenvector(make_closure(template, batch))
            if round_index > 0:
                refresh_seconds[iters].append(time.process_time() - start)
    if not quick:  # each timed window held window / freq refreshes; the warm-up one held one less (none at step 0)
        for name, (_, optimizer) in steps.items():
            tracker = getattr(optimizer, "tracker", None)
            if tracker is not None:
                assert tracker.num_refreshes == (rounds + 1) * OPTIMIZERS[name][2] // tracker.freq - 1
    sam = statistics.median(seconds["SAM"])
    refresh = {iters: statistics.median(values) for iters, values in refresh_seconds.items()}
    print(f"\nPart 1: {rounds} timed rounds (medians), batch {BATCH}, {torch.get_num_threads()} torch thread(s)")
    print(f"{'optimizer':38s} {'CPU ms/step':>11s} {'× SGD':>7s} {'× SAM':>7s} {'floor × SAM':>11s}")
    for name, values in seconds.items():
        to_sgd = statistics.median(v / s for v, s in zip(values, seconds["SGD"], strict=True))
        to_sam = statistics.median(v / s for v, s in zip(values, seconds["SAM"], strict=True))
        optimizer = steps[name][1]
        tracker = getattr(optimizer, "tracker", None)
        budget = (tracker.rule, tracker.power_iters, tracker.refresh_tol) if tracker is not None else None
        floor = "" if tracker is None else f"{1 + refresh[budget] / (tracker.freq * sam):11.3f}"
        print(f"{name:38s} {1e3 * statistics.median(values):11.1f} {to_sgd:7.3f} {to_sam:7.3f} {floor}")
    for (rule, iters, tol), value in refresh.items():
        tracker = refreshers[rule, iters, tol].tracker
        used = tracker.num_hvps / tracker.num_refreshes  # a tolerance may stop early: the products it took
        print(
            f"refresh alone, {rule}, at most {iters} HVPs, tol {tol}: {used:.1f} HVPs, {1e3 * value:.0f} CPU ms = "
            f"{value / sam:.2f} SAM steps"
        )


def _rule(kwargs: dict[str, int | str | float]) -> tuple[str, int, float | None]:
    """(refresh rule, most products per refresh, Ritz tolerance) of an optimizer's keyword arguments."""
    rule = str(kwargs.get("refresh", "ritz"))
    tol = kwargs.get("refresh_tol", DEFAULT_TOLERANCE) if rule == "ritz" else None
    return rule, int(kwargs.get("power_iters", DEFAULT_PRODUCTS[rule])), None if tol is None else float(tol)


def measure_paired(repeats: int, workload: str, only: str = "") -> None:
    """Each eigenvector method against SAM, one step of each in turn, so both see the same load.

    A repeat spans two refresh periods of the method (its refreshes included) and the same number of SAM steps,
    alternating step by step; its ratio is the method's summed CPU time over SAM's. Printed: median and spread.
    The "step alone" rows (v set at random, never refreshed; windows of 20 steps) give what a step costs beyond
    SAM's without any refresh. ``only``: measure just the rows whose name contains it (e.g. "X-SAM").
    """
    torch.manual_seed(0)
    if workload == "small-cnn":
        template, fixed = SmallCNN(), make_batch(0)
        batches = [fixed]
    else:
        shared = make_workload(workload)
        template = shared.model
        batches = [shared.batch(BATCH, seed=seed) for seed in range(PAIRED_BATCHES)]
    feed = [0]  # the index of the current batch; both optimizers of a pair step on the same batch

    def current() -> tuple[torch.Tensor, torch.Tensor]:
        return batches[feed[0] % len(batches)]

    sam_step, _ = build_step(template, current, SAM, {})
    print(
        f"\nPaired: {repeats} repeats of two refresh periods each, alternating with SAM step by step, "
        f"{len(batches)} batch(es) in turn"
    )
    print(f"{'optimizer':44s} {'× SAM median':>12s} {'spread':>15s} {'HVPs/refresh':>12s}")
    cases = {name: (factory, kwargs) for name, (factory, kwargs, _) in OPTIMIZERS.items() if factory in TRACKING}
    for name, (factory, kwargs) in {**cases, **OWN_REFRESH_PASS, **STEPS_ONLY}.items():
        if only not in name:
            continue
        step, optimizer = build_step(template, current, factory, kwargs, own_refresh_pass=name in OWN_REFRESH_PASS)
        period = optimizer.tracker.freq if optimizer.tracker.freq < NO_REFRESH else WINDOW
        if optimizer.tracker.freq == NO_REFRESH:
            numel = sum(p.numel() for p in template.parameters())
            optimizer.tracker.set_vector(torch.randn(numel, generator=torch.Generator().manual_seed(1)))
        for _ in range(period):  # past the first (cold) refresh
            step()
            sam_step()
            feed[0] += 1
        ratios = []
        hvps, refreshes = optimizer.tracker.num_hvps, optimizer.tracker.num_refreshes
        for _ in range(repeats):
            ours = sam = 0.0
            for _ in range(2 * period):
                start = time.process_time()
                step()
                middle = time.process_time()
                sam_step()
                ours, sam = ours + middle - start, sam + time.process_time() - middle
                feed[0] += 1
            ratios.append(ours / sam)
        timed = optimizer.tracker.num_refreshes - refreshes
        used = f"{(optimizer.tracker.num_hvps - hvps) / timed:12.2f}" if timed else f"{'-':>12s}"
        print(f"{name:44s} {statistics.median(ratios):12.3f} {min(ratios):7.3f}-{max(ratios):.3f} {used}")


# -- part 2: refresh study ------------------------------------------------------------------------------------


def power(iters: int) -> Callable[[SymmetricOperator, torch.Tensor | None], tuple[torch.Tensor, float]]:
    def estimate(op: SymmetricOperator, init: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        result = power_iterate(op, init, iters)
        return result.eigenvectors[0], float(result.eigenvalues[0])

    return estimate


def lanczos(iters: int) -> Callable[[SymmetricOperator, torch.Tensor | None], tuple[torch.Tensor, float]]:
    def estimate(op: SymmetricOperator, init: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        with warnings.catch_warnings():  # a fixed budget never meets the tolerance: expected, not news
            warnings.simplefilter("ignore", RuntimeWarning)
            result = top_eigenpairs(op, k=1, tol=0.0, max_iter=iters, init=init)
        return result.eigenvectors[0], float(result.eigenvalues[0])

    return estimate


RULES = {  # name: (estimator, Hessian-vector products per refresh)
    "power 5 (published)": (power(5), 5),
    "power 3": (power(3), 3),
    "power 2": (power(2), 2),
    "lanczos 5": (lanczos(5), 5),
    "lanczos 3": (lanczos(3), 3),
    "lanczos 2": (lanczos(2), 2),
}


def refresh_study(freq: int, refreshes: int) -> None:
    torch.manual_seed(1)
    model = SmallCNN()
    optimizer = SAM(model.parameters(), model=model, **BASE)
    vectors: dict[str, torch.Tensor | None] = dict.fromkeys(RULES)
    cosines: dict[str, list[float]] = {name: [] for name in RULES}
    errors: dict[str, list[float]] = {name: [] for name in RULES}
    reference: torch.Tensor | None = None
    for step in range(freq * refreshes + 1):
        batch = make_batch(1000 + step)
        if step > 0 and step % freq == 0:
            op = HessianOperator(model, F.cross_entropy, batch)  # eval mode, as the optimizers' refresh
            exact = top_eigenpairs(op, k=1, tol=1e-5, max_iter=2000, init=reference)
            reference, top = exact.eigenvectors[0], float(exact.eigenvalues[0])
            for name, (estimate, _) in RULES.items():
                vector, eigenvalue = estimate(op, vectors[name])
                vectors[name] = vector
                cosines[name].append(float(cosine(vector.double(), reference.double()).abs()))
                errors[name].append(abs(eigenvalue / top - 1))
        optimizer.step(make_closure(model, batch))
    print(f"\nPart 2: a refresh every {freq} SAM steps, {refreshes} in all (the first cold, then warm-started)")
    print(f"{'rule':20s} {'HVPs':>4s} {'cold |cos|':>10s} {'warm: median 1-|cos|':>20s} ", end="")
    print(f"{'worst 1-|cos|':>13s} {'median |λ/λ1-1|':>15s}")
    for name, (_, iters) in RULES.items():
        misalignment = [1 - value for value in cosines[name][1:]]
        print(
            f"{name:20s} {iters:4d} {cosines[name][0]:10.4f} {statistics.median(misalignment):20.1e} "
            f"{max(misalignment):13.1e} {statistics.median(errors[name][1:]):15.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up round")
    parser.add_argument("--study-freqs", default="5,20", help="refresh periods of the study, comma-separated")
    parser.add_argument("--study-refreshes", type=int, default=12, help="refreshes per study period")
    parser.add_argument(
        "--part", choices=("all", "overhead", "paired", "study"), default="all", help="which part to run"
    )
    parser.add_argument("--paired-repeats", type=int, default=5, help="repeats of the paired comparison")
    parser.add_argument("--paired-only", default="", help="paired rows whose name contains this text (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2-step windows, short study")
    parser.add_argument(
        "--workload",
        choices=("small-cnn", *WORKLOADS),
        default="small-cnn",
        help="model and batch of the step times (small-cnn: this script's own CNN on random images)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.rounds, args.study_freqs, args.study_refreshes = 1, "2", 3
    print(f"torch {torch.__version__}, CPU")
    if args.part in ("all", "overhead"):
        measure_overhead(args.rounds, args.quick, args.workload)
    if args.part in ("all", "paired"):
        measure_paired(1 if args.quick else args.paired_repeats, args.workload, args.paired_only)
    if args.part in ("all", "study"):
        for freq in (int(value) for value in args.study_freqs.split(",")):
            refresh_study(freq, args.study_refreshes)


if __name__ == "__main__":
    main()
