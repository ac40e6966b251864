"""What the checked checkpoint costs: write_checkpoint and read_checkpoint against torch.save and torch.load.

The state is a ResNet-18's (CIFAR-shaped, 10 classes) weights and a momentum buffer per parameter, about what a
``Trainer`` checkpoint of that model holds. Each round times, in the same process and interleaved, ``torch.save``
then ``write_checkpoint`` (SHA-256 over every tensor's bytes, then the same save), ``torch.load(weights_only=True)``
then ``read_checkpoint`` (the same load, then the checksum); printed: the file size, median seconds of each and the
median of the per-round ratios. Wall-clock time into a temporary folder on the local disk.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/checkpoint_overhead.py [--rounds 7]``. Records:
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from workbench.models import build_model
from workbench.train.checkpoint import read_checkpoint, write_checkpoint


def seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()
    model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10, seed=0)
    state = {"model": model.state_dict(), "momentum": [torch.randn_like(param) for param in model.parameters()]}
    times: dict[str, list[float]] = {"torch.save": [], "write_checkpoint": [], "torch.load": [], "read_checkpoint": []}
    with tempfile.TemporaryDirectory() as folder:
        plain, checked = Path(folder) / "plain.pt", Path(folder) / "checked.pt"
        for _ in range(args.rounds):
            times["torch.save"].append(seconds(lambda: torch.save(state, plain)))
            times["write_checkpoint"].append(seconds(lambda: write_checkpoint(checked, state)))
            times["torch.load"].append(seconds(lambda: torch.load(plain, weights_only=True)))
            times["read_checkpoint"].append(seconds(lambda: read_checkpoint(checked)))
        size = checked.stat().st_size / 1e6
    print(f"checkpoint of {size:.1f} MB, {args.rounds} rounds, torch {torch.__version__}")
    for ours, theirs in (("write_checkpoint", "torch.save"), ("read_checkpoint", "torch.load")):
        ratio = statistics.median(a / b for a, b in zip(times[ours], times[theirs], strict=True))
        print(
            f"  {theirs:10s} {statistics.median(times[theirs]):.3f} s   {ours:16s} "
            f"{statistics.median(times[ours]):.3f} s   ratio {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
