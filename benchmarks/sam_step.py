"""Workbench's SAM step against a minimal two-pass SAM loop written here: time, peak memory and host reads.

Both train their own copy of the same model on the same batch with the same base optimizer (SGD, momentum 0.9,
weight decay 5e-4), one step of each in turn (CPU time of this process, one torch thread; medians of the per-round
ratios, a round being ``--window`` steps of each). The minimal loop is what a researcher writes by hand
(davda54/sam's step without its classes): gradient, ε = ρ·g/‖g‖ added in place with θ saved, second gradient, θ
restored, base step.

Peak memory: the largest amount of tensor memory alive during one step beyond what was alive before it, from the
profiler's allocation records (CPU), in bytes and in copies of the parameters. Host reads: the operations that
would make the host wait for a GPU during one step (``workbench.diagnostics.HostSyncCounter``), for a plain step and
for the eigenvector methods' refresh steps.

Run: ``python benchmarks/sam_step.py --workload cifar-shaped --rounds 7``. Records: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.workloads import WORKLOADS, make_workload
from workbench.diagnostics import HostSyncCounter, peak_tensor_bytes
from workbench.optim import SAM, XSAM, EigenSAM

BATCH = 128
BASE = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
RHO = 0.05

Step = Callable[[], None]


class PassClock:
    """CPU seconds spent inside the forward/backward passes, so the rest of a step (the optimizer's own work) can
    be told apart from them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def run(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        start = time.process_time()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        self.seconds += time.process_time() - start
        return loss


def minimal_sam(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], clock: PassClock) -> Step:
    """The hand-written SAM step: one saved copy of θ, ε applied in place."""
    params = [param for param in model.parameters() if param.requires_grad]
    base = torch.optim.SGD(params, **BASE)

    def step() -> None:
        clock.run(model, batch)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([param.grad.norm() for param in params]))
            scale = RHO / (norm + 1e-12)
            saved = [param.detach().clone() for param in params]
            for param in params:
                param.add_(param.grad * scale)
        base.zero_grad(set_to_none=True)
        clock.run(model, batch)
        with torch.no_grad():
            for param, value in zip(params, saved, strict=True):
                param.copy_(value)
        base.step()
        base.zero_grad(set_to_none=True)

    return step


def workbench_step(
    optimizer: torch.optim.Optimizer, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], clock: PassClock
) -> Step:
    def closure() -> torch.Tensor:
        return clock.run(model, batch)

    def step() -> None:
        optimizer.step(closure)
        optimizer.zero_grad(set_to_none=True)

    return step


def build_steps(template: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, tuple[Step, PassClock]]:
    """Each contender's step function and the clock of its forward/backward passes."""
    clocks = {name: PassClock() for name in ("minimal loop", "workbench SAM", "workbench SAM, model=")}
    models = {name: copy.deepcopy(template) for name in clocks}
    plain = SAM(models["workbench SAM"].parameters(), rho=RHO, **BASE)
    owner = models["workbench SAM, model="]
    with_model = SAM(owner.parameters(), rho=RHO, model=owner, **BASE)
    steps = {
        "minimal loop": minimal_sam(models["minimal loop"], batch, clocks["minimal loop"]),
        "workbench SAM": workbench_step(plain, models["workbench SAM"], batch, clocks["workbench SAM"]),
        "workbench SAM, model=": workbench_step(
            with_model, models["workbench SAM, model="], batch, clocks["workbench SAM, model="]
        ),
    }
    return {name: (steps[name], clocks[name]) for name in clocks}


def host_reads(template: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Host reads counted during a plain step, a refresh step, and one read of the step record."""
    print("\nHost reads per step (HostSyncCounter; 0 = queues all its work without waiting):")
    cases = {
        "SAM": (SAM, {}),
        "Eigen-SAM, power 5 (published)": (EigenSAM, {"freq": 2, "refresh": "power"}),
        "Eigen-SAM, ritz 4": (EigenSAM, {"freq": 2, "refresh_tol": 0.0, "power_iters": 4}),
        "Eigen-SAM, ritz tol (default)": (EigenSAM, {"freq": 2}),
        "X-SAM, power 5 (published)": (XSAM, {"freq": 2, "refresh": "power"}),
        "X-SAM, ritz 4": (XSAM, {"freq": 2, "refresh_tol": 0.0, "power_iters": 4}),
        "X-SAM, ritz tol (default)": (XSAM, {"freq": 2}),
    }
    for name, (factory, options) in cases.items():
        model = copy.deepcopy(template)
        optimizer = factory(model.parameters(), model=model, **options, **BASE)
        step = workbench_step(optimizer, model, batch, PassClock())
        counts = []
        for _ in range(5):  # steps 0-4: refreshes before steps 2 and 4 (the first cold, the second warm)
            with HostSyncCounter() as counter:
                step()
            counts.append(counter.total)
        print(f"  {name:32s} steps 0-4: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS[:2], default="cifar-shaped")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after a warm-up round")
    parser.add_argument("--window", type=int, default=10, help="steps per optimizer per round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workload = make_workload(args.workload)
    batch = workload.batch(BATCH, seed=1)
    params = sum(param.numel() for param in workload.model.parameters())
    print(f"torch {torch.__version__}, CPU, 1 thread; {workload.description}, {params} parameters, batch {BATCH}")
    steps = build_steps(workload.model, batch)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    own: dict[str, list[float]] = {name: [] for name in steps}  # outside the forward/backward passes
    for round_index in range(args.rounds + 1):
        totals = dict.fromkeys(steps, 0.0)
        for clock in (clock for _, clock in steps.values()):
            clock.seconds = 0.0
        for _ in range(args.window):  # one step of each contender in turn: all see the same load
            for name, (step, _) in steps.items():
                start = time.process_time()
                step()
                totals[name] += time.process_time() - start
        if round_index:
            for name, (_, clock) in steps.items():
                seconds[name].append(totals[name] / args.window)
                own[name].append((totals[name] - clock.seconds) / args.window)
    reference = seconds["minimal loop"]
    copy_bytes = 4 * params
    peaks = {name: statistics.median(peak_tensor_bytes(step) for _ in range(3)) for name, (step, _) in steps.items()}
    print(f"\n{args.rounds} rounds of {args.window} steps each (CPU time)")
    print(
        "| step | CPU ms/step (median, spread) | × minimal loop (median, spread of rounds) | own work outside the "
        "passes, ms/step (median) | peak memory during a step |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, values in seconds.items():
        ratios = [value / base for value, base in zip(values, reference, strict=True)]
        extra = (peaks[name] - peaks["minimal loop"]) / copy_bytes
        print(
            f"| {name} | {1e3 * statistics.median(values):.1f} ({1e3 * min(values):.1f}-{1e3 * max(values):.1f}) | "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) | "
            f"{1e3 * statistics.median(own[name]):.2f} | "
            f"{peaks[name] / 2**20:.2f} MiB ({extra:+.2f} parameter copies vs the loop) |"
        )
    passes = statistics.median(seconds["minimal loop"]) - statistics.median(own["minimal loop"])
    for name in steps:
        added = statistics.median(own[name]) - statistics.median(own["minimal loop"])
        print(f"{name}: own work adds {1e3 * added:+.2f} ms/step = {added / passes:+.2%} of the two passes")
    host_reads(workload.model, batch)


if __name__ == "__main__":
    main()
