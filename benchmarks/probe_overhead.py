"""Training throughput with curvature probes every 50 steps (with and without the trace) vs none, same process.

Probes: λ1 and v1 by warm-started Lanczos (tol 1e-3) and tr(H) by Hutch++ on a fixed probe batch, plus the
angles to v1. Runs alternate (none, probed, probed with trace, none, ...) so that machine load hits both alike; the
ratio of medians is reported for wall time and for process CPU time (steadier on a shared machine).

Run:  python benchmarks/probe_overhead.py [--optimizer sam] [--steps 300] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workbench.datasets import load_dataset
from workbench.train import TrainConfig, Trainer


def timed_run(config: TrainConfig, data: object) -> tuple[float, float]:
    trainer = Trainer(config, data=data)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizer", default="sam", help="sgd, sam, asam, eigensam or xsam")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating (none, probed) pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = TrainConfig(dataset="mnist1d", model="cnn", optimizer=args.optimizer, steps=args.steps, eval_every=100)
    data = load_dataset(base.dataset, seed=base.seed)
    variants = {
        "no probes": base.replace(probe_every=None),
        "λ1 + angles /50": base.replace(probe_every=50, probe_trace=False),
        "λ1 + trace /50": base.replace(probe_every=50),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    timed_run(base.replace(steps=20, probe_every=10), data)  # warm-up
    for _ in range(args.rounds):
        for name, config in variants.items():
            times[name].append(timed_run(config, data))
    print(f"{args.optimizer}, mnist1d / cnn, batch {base.batch_size}, {args.steps} steps, {args.threads} thread(s)")
    medians = {name: [statistics.median(t[i] for t in runs) for i in (0, 1)] for name, runs in times.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  {name:16s} wall {wall:7.2f} s ({args.steps / wall:6.1f} steps/s)   cpu {cpu:7.2f} s")
    wall0, cpu0 = medians["no probes"]
    for name, (wall, cpu) in list(medians.items())[1:]:
        print(f"  {name} / no probes: wall {wall / wall0:.3f}x, cpu {cpu / cpu0:.3f}x")


if __name__ == "__main__":
    main()
