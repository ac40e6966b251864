"""Training steps on 1 and on 2 processes (torch.distributed, gloo on the CPU): throughput and all-reduces per step.

Every optimizer (SGD, SAM, Eigen-SAM, X-SAM) trains the default CNN on MNIST-1D (batch 128 over all processes,
so 64 per process on 2) through the Trainer, once on one process and, on two, once per ``perturbation_sync``
("local", "global"; SGD has no perturbation: one run). Rounds alternate a one-process job (every optimizer in
turn) and a two-process job (every optimizer and sync in turn), each process started with torch.multiprocessing.
A step's time is the span from the Trainer's "boundary" event to its "step" event on rank 0 (the forward and
backward passes, the eigenvector refresh when due, the all-reduces and the update; no evaluation, no probes), in
process CPU seconds (``time.process_time``: the machine this was written on is shared, and its wall-clock times
swing with other jobs' load; a rank blocked in an all-reduce spends little CPU, so CPU time is the work each
process does) and in wall seconds. The all-reduce counts and payload bytes are rank 0's ``comm_*`` history values
(the all-reduces DDP issues for the gradients, the ones averaging Hessian-vector products, and the one averaging
the loss with the model's buffers).

Printed: per optimizer and process count, the mean CPU and wall milliseconds per step (steps after the first
``--warmup``; medians over rounds), throughput in steps per wall second, its ratio to one process, and the mean
per-step gradient syncs, all-reduces and MB.

Run: ``python benchmarks/distributed_steps.py`` (``--rounds 3 --steps 40``; ``--quick``: a smoke run).
Records: benchmarks/RESULTS.md ("Training on several processes").
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from workbench.train import TrainConfig, Trainer, TrainEvent

OPTIMIZERS = {"sgd": {}, "sam": {"rho": 0.05}, "eigensam": {"rho": 0.05, "freq": 10}, "xsam": {"rho": 0.05, "freq": 10}}


def runs(processes: int) -> list[tuple[str, str, dict[str, object]]]:
    """(optimizer, sync, options) of the runs of a job on ``processes`` processes."""
    syncs = ("local",) if processes == 1 else ("local", "global")
    return [
        (name, sync, options)
        for name, options in OPTIMIZERS.items()
        for sync in (("-",) if name == "sgd" else syncs)
    ]


def job(rank: int, processes: int, port: int, steps: int, output: str) -> None:
    """One process of a job: every run of ``runs(processes)``; rank 0 saves the step times and counts."""
    torch.set_num_threads(1)
    if processes > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=processes)
    results = {}
    for name, sync, options in runs(processes):
        config = TrainConfig(
            dataset="mnist1d",
            model="cnn",
            optimizer=name,
            batch_size=128,
            steps=steps,
            probe_every=None,
            device="cpu",
            perturbation_sync="local" if sync == "-" else sync,
            **options,
        )
        clocks: list[tuple[float, float]] = []
        spans: list[tuple[float, float]] = []

        def time_steps(event: TrainEvent, clocks=clocks, spans=spans) -> None:
            if event.kind == "boundary":
                clocks.append((time.process_time(), time.perf_counter()))
            elif event.kind == "step":
                cpu, wall = clocks[-1]
                spans.append((time.process_time() - cpu, time.perf_counter() - wall))

        trainer = Trainer(config, callbacks=[time_steps])
        trainer.run()
        history = trainer.history.to_frame()
        counts = {
            metric: float(history[history.metric == f"comm_{metric}"].value.mean())
            for metric in ("gradient_syncs", "allreduces", "allreduce_bytes")
        }
        results[(name, sync)] = {"spans": spans, **counts}
    if rank == 0:
        torch.save(results, Path(output) / f"{processes}-{time.monotonic_ns()}.pt")
    if processes > 1:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round of 8 steps (a smoke run)")
    args = parser.parse_args()
    rounds, steps, warmup = (1, 8, 2) if args.quick else (args.rounds, args.steps, args.warmup)
    gathered: dict[tuple[int, str, str], list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as output:
        for _ in range(rounds):
            for processes in (1, 2):
                arguments = (processes, _free_port(), steps, output)
                mp.start_processes(job, args=arguments, nprocs=processes, start_method="spawn")
                (path,) = sorted(Path(output).glob(f"{processes}-*.pt"))
                for (name, sync), values in torch.load(path, weights_only=False).items():
                    gathered.setdefault((processes, name, sync), []).append(values)
                path.unlink()
    print(f"torch {torch.__version__}, gloo on CPU, {rounds} rounds of {steps} steps (first {warmup} not timed)")
    print("| optimizer | processes | sync | CPU ms/step | wall ms/step | steps/s | vs 1 process | "
          "gradient syncs | all-reduces | MB all-reduced |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    single = {}
    for (processes, name, sync), rounds_values in sorted(gathered.items(), key=lambda item: _order(item[0])):
        cpu = statistics.median(statistics.mean(c for c, _ in v["spans"][warmup:]) for v in rounds_values)
        wall = statistics.median(statistics.mean(w for _, w in v["spans"][warmup:]) for v in rounds_values)
        throughput = 1.0 / wall
        if processes == 1:
            single[name] = throughput
        ratio = throughput / single[name]
        first = rounds_values[0]
        counts = (
            "-, -, -"
            if processes == 1
            else f"{first['gradient_syncs']:.0f}, {first['allreduces']:.2f}, {first['allreduce_bytes'] / 1e6:.3f}"
        )
        print(
            f"| {name} | {processes} | {sync} | {cpu * 1e3:.1f} | {wall * 1e3:.1f} | {throughput:.1f} | "
            f"{ratio:.2f}× | " + " | ".join(counts.split(", ")) + " |"
        )


def _order(key: tuple[int, str, str]) -> tuple[int, int, str]:
    processes, name, sync = key
    return list(OPTIMIZERS).index(name), processes, sync


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
