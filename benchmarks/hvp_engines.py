"""Which exact HVP engine is fastest? Double backprop through a kept graph vs torch.func forward-over-reverse,
one vector at a time and vectorised over 8 vectors (vmap), on the benchmark models, same process.

Run:  python benchmarks/hvp_engines.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.curvature_vs_pyhessian import make_cases
from workbench.curvature import HessianOperator


def milliseconds_per_product(op: HessianOperator, vectors: torch.Tensor, repeats: int) -> float:
    op.batched_matvec(vectors)  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        op.batched_matvec(vectors)
        samples.append((time.perf_counter() - start) * 1e3 / vectors.shape[0])
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); ms per HVP, median of {args.repeats}")
    for case in make_cases():
        generator = torch.Generator().manual_seed(0)
        gradient_ms = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            case.model.zero_grad()
            F.cross_entropy(case.model(case.inputs), case.targets).backward()
            gradient_ms.append((time.perf_counter() - start) * 1e3)
        case.model.zero_grad(set_to_none=True)
        line = f"{case.name:18s} gradient {statistics.median(gradient_ms):7.2f} ms |"
        for engine in ("graph", "func"):
            for batch, max_batched in ((1, 1), (8, 8)):
                op = HessianOperator(case.model, F.cross_entropy, (case.inputs, case.targets), hvp=engine,
                                     max_batched=max_batched)  # fmt: skip
                vectors = torch.randn(batch, op.num_params, generator=generator)
                label = f"{engine}{'' if batch == 1 else ' vmap×8'}"
                line += f" {label} {milliseconds_per_product(op, vectors, args.repeats):7.2f} |"
        print(line)


if __name__ == "__main__":
    main()
