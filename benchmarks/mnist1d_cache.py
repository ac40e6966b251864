"""MNIST-1D: generating the samples with mnist1d's procedure versus reading them back from workbench's npz cache.

Run from the repository root: ``python benchmarks/mnist1d_cache.py [--samples 5000] [--repeats 5]``.
Prints medians over repeats (seconds) and the ratio generate / cached, both measured in this process.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from workbench.datasets import load_dataset  # noqa: E402
from workbench.datasets.mnist1d import cached_samples, generate_samples  # noqa: E402


def seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    import mnist1d.data  # noqa: F401  (what a cache hit never imports)

    import_time = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as root:
        generate = seconds(lambda: generate_samples(args.samples, 42), args.repeats)
        cached_samples(Path(root), args.samples, 42)  # fill the cache
        read = seconds(lambda: cached_samples(Path(root), args.samples, 42), args.repeats)
        load = seconds(lambda: load_dataset("mnist1d", root=root, num_samples=args.samples), args.repeats)
    print(f"samples={args.samples} repeats={args.repeats} (medians)")
    print(f"import mnist1d.data (once, cold) : {import_time:.3f} s")
    print(f"generate (mnist1d make_dataset)  : {generate:.3f} s")
    print(f"read npz cache                   : {read:.4f} s   generate/read = {generate / read:.0f}x")
    print(f"load_dataset on a cache hit      : {load:.4f} s   generate/load = {generate / load:.0f}x")


if __name__ == "__main__":
    main()
