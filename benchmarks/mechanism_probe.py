"""What the λ1-mechanism and scale probes cost: products per probe, and seconds per probe against a training step.

Five runs of the same training, alternating (none, probed, ..., none, ...) so that machine load hits all alike:
no probes; the curvature probe (λ1 and v1 by warm-started Lanczos at tol 1e-3, angles; no trace) with the weight
and logit norms it always brings; that plus the adaptive sharpness (``probe_adaptive_rho``); that plus the step
decomposition (``probe_mechanism``); and both. A probe's cost is the run's extra time over the run without probes
divided by the number of probes, given in training steps (the no-probe run's time per step); medians over rounds,
for wall time and for process CPU time (steadier on a shared machine). Products are read from the histories:
``probe_hvps`` and ``mechanism_hvps`` per probe (the mechanism probe also takes one third-order product and two
gradients, and the adaptive sharpness ``probe_adaptive_steps`` gradients, on the probe batch).

Run:  python benchmarks/mechanism_probe.py [--optimizer sam] [--steps 300] [--probe-every 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workbench.datasets import load_dataset
from workbench.train import TrainConfig, Trainer


def timed_run(config: TrainConfig, data: object) -> tuple[float, float, Trainer]:
    trainer = Trainer(config, data=data)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.run()
    return time.perf_counter() - wall, time.process_time() - cpu, trainer


def mean_logged(trainer: Trainer, metric: str) -> float:
    frame = trainer.history.to_frame()
    values = frame[frame.metric == metric].value
    return float(values.mean()) if len(values) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizer", default="sam", help="sgd, sam, asam, eigensam or xsam")
    parser.add_argument("--model", default="mlp", help="model name (mlp: the study's GELU MLP)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--probe-every", type=int, default=10, help="steps between probes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the five runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"activation": "gelu"} if args.model == "mlp" else {}
    base = TrainConfig(dataset="mnist1d", model=args.model, model_options=options, optimizer=args.optimizer,
                       lr=0.1, steps=args.steps, eval_every=args.steps, probe_trace=False)  # fmt: skip
    probed = base.replace(probe_every=args.probe_every)
    variants = {
        "no probes": base.replace(probe_every=None),
        "λ1 + angles + norms": probed,
        "+ adaptive sharpness": probed.replace(probe_adaptive_rho=0.1),
        "+ mechanism": probed.replace(probe_mechanism=True),
        "+ both": probed.replace(probe_adaptive_rho=0.1, probe_mechanism=True),
    }
    data = load_dataset(base.dataset, seed=base.seed)
    timed_run(base.replace(steps=20, probe_every=10, probe_mechanism=True), data)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    products: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, config in variants.items():
            wall, cpu, trainer = timed_run(config, data)
            times[name].append((wall, cpu))
            products[name] = (mean_logged(trainer, "probe_hvps"), mean_logged(trainer, "mechanism_hvps"))
    probes = -(-args.steps // args.probe_every)
    print(f"{args.optimizer}, mnist1d / {args.model}, batch {base.batch_size}, probe batch {base.probe_batch_size}, "
          f"{args.steps} steps, a probe every {args.probe_every} ({probes} probes), {args.threads} thread(s), "
          f"medians of {args.rounds} rounds")  # fmt: skip
    medians = {name: [statistics.median(t[i] for t in runs) for i in (0, 1)] for name, runs in times.items()}
    wall0, cpu0 = medians["no probes"]
    print(f"  training step: wall {1000 * wall0 / args.steps:.2f} ms, cpu {1000 * cpu0 / args.steps:.2f} ms")
    for name, (wall, cpu) in list(medians.items())[1:]:
        probe_hvps, mechanism_hvps = products[name]
        extra_wall, extra_cpu = (wall - wall0) / probes, (cpu - cpu0) / probes
        print(f"  {name:22s} per probe: wall {1000 * extra_wall:7.1f} ms = {extra_wall / (wall0 / args.steps):5.1f} "
              f"steps, cpu {1000 * extra_cpu:7.1f} ms = {extra_cpu / (cpu0 / args.steps):5.1f} steps; "
              f"HVPs: curvature {probe_hvps:.1f}, mechanism {mechanism_hvps:.1f}")  # fmt: skip
    trainer = Trainer(probed, data=data)
    trainer.run()
    parts = {"curvature probe": lambda: trainer.probe.measure(args.steps),
             "weight and logit norms": lambda: trainer.scale_probe.measure(args.steps)}  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(20):
        for name, measure in parts.items():
            started = time.process_time()
            measure()
            seconds[name].append(time.process_time() - started)
    print("  in process, at the last weights (cpu, median of 20 interleaved): "
          + ", ".join(f"{name} {1000 * statistics.median(s):.2f} ms" for name, s in seconds.items()))  # fmt: skip


if __name__ == "__main__":
    main()
