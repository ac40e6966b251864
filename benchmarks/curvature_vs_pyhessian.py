"""Curvature engine vs PyHessian (and hessian-eigenthings / curvlinops where installed), same process.

For a small CIFAR-shaped CNN (with BatchNorm) and an MLP on UCI digits, on the same batch and weights:
  * top-1 and top-5 eigenvalues: wall time, HVP count and max relative error against a converged float64
    reference (our Lanczos at tol 1e-10, cross-checked with ARPACK/scipy eigsh), over a sweep of each
    method's accuracy knob; then, per method, the cheapest setting that reaches 1e-3 relative error, and
    the speed ratio against PyHessian at that equal accuracy;
  * trace: RMS relative error over seeds for Hutch++ and Hutchinson at growing HVP budgets, the budget each
    needs for 1 % RMS error, and PyHessian's trace at its own stopping rule;
  * drop-in: the same calls at PyHessian's defaults (``eigenvalues()``, ``eigenvalues(top_n=5)``, ``trace()``,
    ``density()``, and ``trace(maxIter=30)``, near PyHessian's own HVP count) through ``pyhessian.hessian`` and
    ``workbench.compat.hessian``, interleaved over seeds: wall time (constructor included), HVPs and error
    against the references above.

Run:  python benchmarks/curvature_vs_pyhessian.py                 (full, ~15-25 min on 2 CPU cores)
      python benchmarks/curvature_vs_pyhessian.py --quick         (smaller sweeps, a few minutes)
      python benchmarks/curvature_vs_pyhessian.py --dropin-only   (only the drop-in comparison)
Peers: `pip install pyhessian==0.1 hessian-eigenthings curvlinops-for-pytorch` (curvlinops pulls
torchvision: install it with --no-deps plus its own needs where that would replace a CPU torch build).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from sklearn.datasets import load_digits
from torch import nn

from workbench.compat import hessian as compat_hessian
from workbench.curvature import HessianOperator, hessian_trace, top_eigenpairs

TARGET_EIGEN_ERROR = 1e-3
TARGET_TRACE_ERROR = 1e-2


@dataclass
class Case:
    name: str
    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor


@dataclass
class Run:
    method: str
    setting: str
    seconds: float
    hvps: int
    error: float


def small_cifar_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


def digits_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 10))


def pretrain(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int) -> nn.Module:
    """A few SGD steps so the Hessian is that of a partly trained network, not of the initialisation."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def make_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    images = torch.randn(128, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (128,), generator=generator)
    cnn = pretrain(small_cifar_cnn(), images, labels, steps=30)
    digits = load_digits()
    features = torch.tensor(digits.data[:512] / 16.0, dtype=torch.float32)
    classes = torch.tensor(digits.target[:512])
    mlp = pretrain(digits_mlp(), features, classes, steps=200)
    return [Case("cnn-cifar-shaped", cnn, images, labels), Case("mlp-digits", mlp, features, classes)]


def timed(function: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def reference_spectrum(case: Case, k: int) -> np.ndarray:
    """Top-k eigenvalues of the float64 copy, by our Lanczos at tol 1e-10, checked against ARPACK."""
    model64 = copy.deepcopy(case.model).double()
    op = HessianOperator(model64, F.cross_entropy, (case.inputs.double(), case.targets))
    ours = top_eigenpairs(op, k=k, tol=1e-10, max_iter=20000).eigenvalues.numpy()
    arpack = np.sort(eigsh(op.to_linear_operator(), k=k, which="LA", tol=1e-12, return_eigenvectors=False))[::-1]
    agreement = np.max(np.abs(ours - arpack) / np.abs(arpack))
    print(f"  reference top-{k}: {np.array2string(ours, precision=5)} (ARPACK agrees to {agreement:.1e})")
    return ours


def relative_error(found: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.sort(found)[::-1] - reference) / np.abs(reference)))


def run_ours(case: Case, k: int, tol: float) -> tuple[Run, np.ndarray]:
    def solve() -> tuple[np.ndarray, int]:
        op = HessianOperator(case.model, F.cross_entropy, (case.inputs, case.targets))
        result = top_eigenpairs(op, k=k, tol=tol, max_iter=5000)
        return result.eigenvalues.numpy(), result.num_hvps

    (values, hvps), seconds = timed(solve)
    return Run("workbench lanczos", f"tol={tol:g}", seconds, hvps, float("nan")), values


def run_pyhessian(case: Case, k: int, tol: float, max_iter: int) -> tuple[Run, np.ndarray]:
    module = importlib.import_module("pyhessian.hessian")
    counter = _CallCounter(module, "hessian_vector_product")
    torch.manual_seed(0)

    def solve() -> list[float]:
        data = (case.inputs, case.targets)
        engine = module.hessian(case.model, F.cross_entropy, data=data, cuda=case.inputs.is_cuda)
        values, _ = engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        return values

    try:
        values, seconds = timed(solve)
    finally:
        counter.restore()
        case.model.zero_grad(set_to_none=True)  # PyHessian leaves graph-carrying .grad behind
    return Run("pyhessian power", f"tol={tol:g},maxIter={max_iter}", seconds, counter.calls, float("nan")), np.array(
        values
    )


def run_eigenthings(case: Case, k: int, steps: int) -> tuple[Run, np.ndarray]:
    eigenthings = importlib.import_module("hessian_eigenthings")
    loss = eigenthings.supervised_loss(F.cross_entropy)

    def solve() -> tuple[np.ndarray, int]:
        op = eigenthings.HessianOperator(case.model, [(case.inputs, case.targets)], loss)
        result = eigenthings.lanczos(op, k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
        return result.eigenvalues.detach().numpy(), steps

    (values, hvps), seconds = timed(solve)
    case.model.zero_grad(set_to_none=True)
    return Run("hessian-eigenthings lanczos", f"steps={steps}", seconds, hvps, float("nan")), values


def run_curvlinops(case: Case, k: int, tol: float) -> tuple[Run, np.ndarray]:
    curvlinops = importlib.import_module("curvlinops")
    params = [p for p in case.model.parameters() if p.requires_grad]
    calls = [0]

    def solve() -> np.ndarray:
        hessian = curvlinops.HessianLinearOperator(
            case.model, torch.nn.CrossEntropyLoss(), params, [(case.inputs, case.targets)], check_deterministic=False
        ).to_scipy()

        def counted(block: np.ndarray) -> np.ndarray:
            calls[0] += 1 if block.ndim == 1 else block.shape[1]
            return hessian @ block

        wrapped = LinearOperator(hessian.shape, matvec=counted, matmat=counted, dtype=hessian.dtype)
        return eigsh(wrapped, k=k, which="LA", tol=tol, v0=np.random.default_rng(0).standard_normal(hessian.shape[0]))[
            0
        ]

    values, seconds = timed(solve)
    return Run("curvlinops + scipy eigsh", f"tol={tol:g}", seconds, calls[0], float("nan")), values


class _CallCounter:
    def __init__(self, module: object, name: str) -> None:
        self.module, self.name, self.calls = module, name, 0
        self.original = getattr(module, name)

        def counting(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return self.original(*args, **kwargs)

        setattr(module, name, counting)

    def restore(self) -> None:
        setattr(self.module, self.name, self.original)


def peer_available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception as error:  # a peer that fails to import is reported and skipped, never fatal
        print(f"  (peer {name} unavailable: {type(error).__name__}: {error})")
        return False
    return True


def eigen_sweep(case: Case, k: int, quick: bool, repeats: int) -> list[Run]:
    reference = reference_spectrum(case, k)
    n = sum(p.numel() for p in case.model.parameters())
    jobs: list[Callable[[], tuple[Run, np.ndarray]]] = []
    for tol in [1e-1, 3e-2, 1e-2, 3e-3, 1e-3] + ([] if quick else [1e-4]):
        jobs.append(lambda tol=tol: run_ours(case, k, tol))
    if peer_available("pyhessian"):
        settings = [(1e-2, 100), (1e-3, 100)] + ([] if quick else [(1e-4, 100), (1e-5, 1000)])
        for tol, max_iter in settings:
            jobs.append(lambda tol=tol, max_iter=max_iter: run_pyhessian(case, k, tol, max_iter))
    if peer_available("hessian_eigenthings"):
        for steps in sorted({min(n - 1, s) for s in ([2 * k, 4 * k, 20, 40] + ([] if quick else [60, 80]))}):
            if steps >= k:
                jobs.append(lambda steps=steps: run_eigenthings(case, k, steps))
    if peer_available("curvlinops"):
        for tol in [1e-2, 1e-3] + ([] if quick else [1e-4]):
            jobs.append(lambda tol=tol: run_curvlinops(case, k, tol))
    runs = []
    for job in jobs:
        samples = [job() for _ in range(repeats)]
        run, values = samples[0]
        run.seconds = statistics.median(sample[0].seconds for sample in samples)
        run.error = relative_error(values, reference)
        runs.append(run)
        print(f"  {run.method:28s} {run.setting:22s} {run.seconds:8.3f} s  {run.hvps:6d} HVPs  err {run.error:.1e}")
    return runs


def equal_accuracy_table(runs: list[Run], label: str) -> None:
    print(f"\n  cheapest setting per method reaching {TARGET_EIGEN_ERROR:g} relative error ({label}):")
    best: dict[str, Run] = {}
    for run in runs:
        if run.error <= TARGET_EIGEN_ERROR and (run.method not in best or run.seconds < best[run.method].seconds):
            best[run.method] = run
    ours = best.get("workbench lanczos")
    for method in sorted({r.method for r in runs}):
        run = best.get(method)
        if run is None:
            print(f"    {method:28s} never reached the target in this sweep")
            continue
        ratio = f"{run.seconds / ours.seconds:6.1f}x ours' time" if ours else ""
        print(f"    {method:28s} {run.setting:22s} {run.seconds:8.3f} s {run.hvps:6d} HVPs  {ratio}")


def trace_study(case: Case, quick: bool) -> None:
    """Budget each estimator needs for 1 % RMS relative error, and PyHessian's trace at its own stopping rule.

    Hutch++ is measured directly over seeds. Hutchinson is an average of iid samples, so its RMS error is
    exactly σ/√m: its needed budget follows from σ, estimated from 400 samples, and is checked against the
    directly measured RMS at the smaller budgets.
    """
    op = HessianOperator(case.model, F.cross_entropy, (case.inputs, case.targets))
    reference = hessian_trace(op, method="hutch++", num_samples=300 if quick else 900, seed=123)
    exact = reference.estimate
    print(f"  reference trace {exact:.4f} ± {reference.stderr:.4f} (Hutch++, {reference.num_hvps} HVPs)")
    seeds = range(4 if quick else 8)
    plain = hessian_trace(op, method="hutchinson", num_samples=400, seed=7)
    sigma = plain.stderr * math.sqrt(plain.num_hvps)
    hutchinson_needed = math.ceil((sigma / (TARGET_TRACE_ERROR * abs(exact))) ** 2)
    hutch_pp_needed = None
    for budget in [12, 24, 48, 96, 192] + ([] if quick else [384, 768]):
        rms: dict[str, float] = {}
        for method in ("hutch++", "hutchinson") if budget <= 96 else ("hutch++",):
            estimates = [hessian_trace(op, method=method, num_samples=budget, seed=s).estimate for s in seeds]
            rms[method] = math.sqrt(statistics.fmean(((e - exact) / exact) ** 2 for e in estimates))
        predicted = sigma / math.sqrt(budget) / abs(exact)
        print(
            f"    budget {budget:4d}: Hutch++ RMS rel err {rms['hutch++']:.4f}"
            + (f"   Hutchinson measured {rms['hutchinson']:.4f}" if "hutchinson" in rms else "")
            + f"   Hutchinson σ/√m {predicted:.4f}"
        )
        if rms["hutch++"] <= TARGET_TRACE_ERROR:
            hutch_pp_needed = budget
            break
    print(f"  Hutchinson needs {hutchinson_needed} HVPs for {TARGET_TRACE_ERROR:.0%} RMS error (σ/√m)")
    if hutch_pp_needed is None:
        print("  Hutch++ did not reach 1 % within the largest budget")
    else:
        ratio = hutchinson_needed / hutch_pp_needed
        print(f"  Hutch++ needs {hutch_pp_needed} HVPs: {ratio:.1f}x fewer than Hutchinson")
    if peer_available("pyhessian"):
        module = importlib.import_module("pyhessian.hessian")
        for tol in (1e-2, 1e-3):
            errors, calls, times = [], [], []
            for seed in seeds:
                counter = _CallCounter(module, "hessian_vector_product")
                torch.manual_seed(seed)
                engine = module.hessian(case.model, F.cross_entropy, data=(case.inputs, case.targets), cuda=False)
                values, seconds = timed(lambda engine=engine, tol=tol: engine.trace(maxIter=100, tol=tol))
                counter.restore()
                case.model.zero_grad(set_to_none=True)
                errors.append((float(np.mean(values)) - exact) / exact)
                calls.append(counter.calls)
                times.append(seconds)
            rms_error = math.sqrt(statistics.fmean(e * e for e in errors))
            print(
                f"  PyHessian trace (Hutchinson) tol={tol:g}, maxIter=100: median {statistics.median(calls):.0f} HVPs, "
                f"{statistics.median(times):.2f} s, RMS rel err {rms_error:.4f}"
            )


DROPIN_CALLS: dict[str, Callable[[object], object]] = {
    "eigenvalues()": lambda engine: engine.eigenvalues(),
    "eigenvalues(top_n=5)": lambda engine: engine.eigenvalues(top_n=5),
    "trace()": lambda engine: engine.trace(),
    "trace(maxIter=30)": lambda engine: engine.trace(maxIter=30),  # about PyHessian's own count at its defaults
    "density()": lambda engine: engine.density(),
}


@dataclass
class DropinRun:
    seconds: list[float]
    hvps: list[int]
    errors: list[float]
    failure: str = ""


def dropin_call(case: Case, library: str, call: str, seed: int) -> tuple[object, float, int]:
    """One call as a PyHessian user makes it, constructor included: (result or the exception, seconds, HVPs)."""
    torch.manual_seed(seed)
    module = importlib.import_module("pyhessian.hessian")
    counter = _CallCounter(module, "hessian_vector_product")
    engine_class = module.hessian if library == "pyhessian" else compat_hessian
    start = time.perf_counter()
    engine = engine_class(case.model, F.cross_entropy, data=(case.inputs, case.targets), cuda=False)
    try:
        result: object = DROPIN_CALLS[call](engine)
    except Exception as error:  # PyHessian's density() on PyTorch 2: reported, not fatal
        result = error
    seconds = time.perf_counter() - start
    counter.restore()
    case.model.zero_grad(set_to_none=True)  # PyHessian leaves graph-carrying .grad behind
    return result, seconds, counter.calls if library == "pyhessian" else engine.operator.num_hvps


def dropin_study(case: Case, quick: bool) -> None:
    """The same calls at PyHessian's defaults through PyHessian and through workbench.compat.hessian.

    Eigenvalue error: max relative error against the float64 reference (``reference_spectrum``); trace error:
    RMS relative error over the seeds of the mean of the returned list against a long Hutch++ run.
    """
    if not peer_available("pyhessian"):
        return
    spectrum = reference_spectrum(case, 5)
    op = HessianOperator(case.model, F.cross_entropy, (case.inputs, case.targets))
    trace = hessian_trace(op, method="hutch++", num_samples=300 if quick else 900, seed=123)
    print(f"  reference trace {trace.estimate:.4f} ± {trace.stderr:.4f} (Hutch++, {trace.num_hvps} HVPs)")
    seeds = range(3 if quick else 5)
    for call in DROPIN_CALLS:
        runs = {library: DropinRun([], [], []) for library in ("pyhessian", "workbench.compat")}
        for seed in seeds:
            order = list(runs) if seed % 2 == 0 else list(reversed(runs))  # interleaved, alternating first
            for library in order:
                result, seconds, hvps = dropin_call(case, library, call, seed)
                run = runs[library]
                run.seconds.append(seconds)
                run.hvps.append(hvps)
                if isinstance(result, Exception):
                    run.failure = f"raises {type(result).__name__}: {str(result).splitlines()[0][:60]}"
                elif call.startswith("eigenvalues"):
                    values = np.array(result[0])
                    run.errors.append(relative_error(values, spectrum[: len(values)]))
                elif call.startswith("trace"):
                    run.errors.append((float(np.mean(result)) - trace.estimate) / trace.estimate)
        print(f"  {call}:")
        for library, run in runs.items():
            timing = f"median {statistics.median(run.seconds):7.3f} s, {statistics.median(run.hvps):5.0f} HVPs"
            if run.failure:
                outcome = run.failure
            elif call.startswith("trace"):
                outcome = f"RMS rel err {math.sqrt(statistics.fmean(e * e for e in run.errors)):.4f}"
            elif run.errors:
                outcome = f"max rel err {max(run.errors):.1e}"
            else:
                outcome = "works"
            print(f"    {library:17s} {timing}  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sweeps and one repeat")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--dropin-only", action="store_true", help="only PyHessian vs workbench.compat.hessian")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {args.threads} threads, device cpu")
    for case in make_cases():
        n = sum(p.numel() for p in case.model.parameters())
        print(f"\n=== {case.name}: {n} parameters, batch {case.inputs.shape[0]} ===")
        if not args.dropin_only:
            for k in (1, 5):
                print(f"\n-- top-{k} eigenvalues --")
                equal_accuracy_table(eigen_sweep(case, k, args.quick, repeats), f"{case.name}, top-{k}")
            print("\n-- trace --")
            trace_study(case, args.quick)
        print("\n-- drop-in: the same calls at PyHessian's defaults --")
        dropin_study(case, args.quick)


if __name__ == "__main__":
    main()
