"""Peak memory of one gradient, one Hessian-vector product and a top-5 Lanczos on ResNet-18 (CIFAR-shaped batch).

Each measurement runs in a fresh process: the model and the batch are built, the baseline is taken, then the
operation runs once and the peak above the baseline is reported (CPU: the process's peak resident set, so the
numbers include allocator slack; CUDA: ``torch.cuda.max_memory_allocated``). The goals of the workbench: an HVP
within 2.5× a gradient's peak, and Lanczos adding no more than its basis of parameter-sized vectors (``basis``
column: max(2k + 1, 20) vectors of the model's size).

Run:  OMP_NUM_THREADS=1 python benchmarks/memory_resnet18.py [--batch 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

OPERATIONS = ("gradient", "hvp graph", "hvp func", "lanczos top-5", "lanczos top-5, basis on cpu")


def measure(operation: str, batch: int, device: str, iterations: int) -> dict[str, float]:
    """Run ``operation`` once in this process; the peak above the baseline in MiB."""
    import torch
    import torch.nn.functional as F

    from workbench.curvature import HessianOperator, top_eigenpairs
    from workbench.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10, seed=0).to(device)
    inputs = torch.randn(batch, 3, 32, 32, device=device)
    targets = torch.randint(0, 10, (batch,), device=device)
    num_params = sum(p.numel() for p in model.parameters())
    vector = torch.randn(num_params, device=device)
    baseline = _peak(device)
    if operation == "gradient":
        F.cross_entropy(model(inputs), targets).backward()
    elif operation.startswith("hvp"):
        engine = operation.split()[1]
        HessianOperator(model, F.cross_entropy, (inputs, targets), hvp=engine).matvec(vector)
    else:
        op = HessianOperator(model, F.cross_entropy, (inputs, targets))
        basis_device = "cpu" if operation.endswith("cpu") else None
        top_eigenpairs(op, k=5, tol=0.0, max_iter=iterations, basis_device=basis_device)
    return {"peak_mib": (_peak(device) - baseline) / 2**20, "params": num_params}


def _peak(device: str) -> float:
    """Bytes: the process's peak resident set (CPU) or the peak of allocated CUDA memory."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="CIFAR-shaped samples per batch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--iterations", type=int, default=25, help="Lanczos steps (> 20: one thick restart)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one operation in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batch, args.device, args.iterations)))
        return
    results = {}
    for operation in OPERATIONS:
        command = [sys.executable, __file__, "--one", operation, "--batch", str(args.batch), "--device", args.device,
                   "--iterations", str(args.iterations)]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[operation] = json.loads(output.strip().splitlines()[-1])
    params = results["gradient"]["params"]
    basis_mib = 20 * params * 4 / 2**20
    gradient = results["gradient"]["peak_mib"]
    print(f"ResNet-18, {params:,} parameters, CIFAR-shaped batch of {args.batch}, {args.device}; peak above baseline")
    print("| operation | peak [MiB] | × gradient |")
    print("|---|---|---|")
    for operation, result in results.items():
        print(f"| {operation} | {result['peak_mib']:.0f} | {result['peak_mib'] / gradient:.2f} |")
    print(f"basis of 20 parameter-sized float32 vectors: {basis_mib:.0f} MiB")


if __name__ == "__main__":
    main()
