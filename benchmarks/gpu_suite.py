"""One GPU run that measures what the CPU benchmarks could not, and prints one markdown block.

Sections (each timed with the device synchronised; medians of repeats):

1. Curvature on ResNet-18 with a CIFAR-shaped batch of 256: ms per gradient and per Hessian-vector product of
   each engine (double backprop on a kept graph, forward-over-reverse), then the top-1 and top-5 eigenvalues and
   the trace by the workbench (Lanczos, Hutch++) and by PyHessian, hessian-eigenthings and curvlinops where
   installed (a peer that is not installed is named as skipped): time, products, relative error against a
   tight Lanczos reference.
2. Optimizer steps on ResNet-18 (batch 256), float32 and bfloat16 autocast: SGD, a minimal two-pass SAM loop
   written here, SAM, Eigen-SAM (freq 100) and X-SAM (freq 5) with the default and the published refresh: ms per
   step, ratio to SAM, peak memory per step, and host reads per step (``HostSyncCounter``). Under autocast the
   eigenvector refresh runs in float32 (``refresh_closure``), as ``Trainer`` runs it with ``amp="bf16"``.
3. Landscape slices: a 51×51 slice of the CIFAR-shaped CNN of ``benchmarks/landscape_grid.py`` by the in-place
   loop, the library's default call, point by point, vmap, and their compiled forms.
4. Training: one shortened CIFAR-shaped epoch (learnable synthetic images) per optimizer through ``Trainer``,
   with curvature probes: steps/s, probe count, final loss and λ1.

``--device cpu --tiny`` runs every section on a tiny ResNet (width 4, 8×8 images, batch 8) with the smallest
budgets (about 30 CPU seconds), as the test suite does (tests/test_gpu_suite.py): a smoke run, not a measurement.

Run: ``python benchmarks/gpu_suite.py`` (CUDA; about 5 minutes on one GPU), or ``--device cpu --tiny``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from benchmarks.curvature_vs_pyhessian import (
    Case,
    relative_error,
    run_curvlinops,
    run_eigenthings,
    run_pyhessian,
)
from benchmarks.landscape_grid import loop_grid
from benchmarks.landscape_grid import make_workload as landscape_workload
from workbench.curvature import HessianOperator, hessian_trace, top_eigenpairs
from workbench.datasets.splits import DatasetSplits
from workbench.devices import resolve_device
from workbench.diagnostics import HostSyncCounter, peak_tensor_bytes
from workbench.models import build_model
from workbench.optim import SAM, XSAM, EigenSAM
from workbench.probes import loss_slice_2d, random_filter_normalized_direction
from workbench.train import TrainConfig, Trainer

BASE = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}


@dataclass(frozen=True)
class Size:
    """How big each section runs: the full GPU setting or the tiny CPU smoke run."""

    width: int  # ResNet-18 width
    image: int  # image side
    batch: int  # curvature and step batch
    repeats: int
    timed_steps: int  # steps per timed optimizer window (Eigen-SAM's window is its freq)
    eigen_freq: int
    grid: int  # landscape points per axis
    landscape_batch: int
    train_steps: int
    train_batch: int
    probe_every: int
    probe_batch: int
    compile_landscape: bool
    top_k: tuple[int, ...]  # eigenpair counts of the curvature table
    reference_tol: float  # Lanczos tolerance of the reference eigenvalues
    peer_iterations: int  # PyHessian's maxIter
    xsam_freq: int
    trace_samples: int  # Hutch++ budget of the training probes


FULL = Size(64, 32, 256, 5, 20, 100, 51, 256, 100, 128, 50, 512, True, (1, 5), 1e-6, 100, 5, 30)
TINY = Size(4, 8, 8, 1, 1, 2, 5, 16, 3, 8, 2, 16, False, (1,), 1e-2, 2, 2, 6)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def installed(module: str) -> bool:
    """Whether the peer package ``module`` can be imported (one that fails to import counts as not installed)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # reported in the table as skipped, never fatal
        log(f"peer {module} unavailable: {type(error).__name__}: {error}")
        return False
    return True


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> tuple[object, float]:
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def median_seconds(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    function()  # warm-up
    return statistics.median(timed(function, device)[1] for _ in range(repeats))


def resnet(size: Size, device: torch.device, seed: int = 0) -> nn.Module:
    shape = (3, size.image, size.image)
    return build_model("resnet18", input_shape=shape, num_classes=10, seed=seed, width=size.width).to(device)


def image_batch(size: Size, count: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, 3, size.image, size.image, generator=generator)
    return inputs.to(device), torch.randint(0, 10, (count,), generator=generator).to(device)


# -- 1. curvature -------------------------------------------------------------------------------------------------


def curvature_section(size: Size, device: torch.device) -> list[str]:
    model = resnet(size, device).eval()
    inputs, targets = image_batch(size, size.batch, device, seed=1)
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    lines = [f"### 1. Curvature: ResNet-18 (width {size.width}, {n:,} parameters), batch {size.batch}", ""]
    vector = torch.randn(n, device=device, generator=None)
    engines = {}

    def gradient() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()

    engines["gradient (forward + backward)"] = median_seconds(gradient, device, size.repeats)
    model.zero_grad(set_to_none=True)
    for engine, title in (("graph", "double backprop, kept graph"), ("func", "forward-over-reverse")):
        op = HessianOperator(model, F.cross_entropy, (inputs, targets), hvp=engine)
        engines[f"product, {engine} ({title})"] = median_seconds(lambda op=op: op.matvec(vector), device, size.repeats)
    lines += ["| engine | ms |", "|---|---:|"]
    lines += [f"| {name} | {1e3 * seconds:.1f} |" for name, seconds in engines.items()]
    case = Case("resnet18", model, inputs, targets)
    lines += ["", "| task | method | setting | time s | products | relative error |", "|---|---|---|---:|---:|---:|"]
    skipped = []
    for k in size.top_k:
        reference = top_eigenpairs(
            HessianOperator(model, F.cross_entropy, (inputs, targets)), k=k, tol=size.reference_tol, max_iter=3000
        ).eigenvalues
        reference = reference.double().cpu().numpy()
        runs: list[tuple[str, str, Callable[[], tuple[np.ndarray, int]]]] = [
            ("workbench Lanczos", "tol 1e-3", lambda k=k: _ours(case, k)),
        ]
        iterations = size.peer_iterations
        for peer, name, setting, job in (
            ("pyhessian", "PyHessian power", f"tol 1e-3, maxIter {iterations}", lambda k=k: _peer(case, k, size)),
            ("hessian_eigenthings", "hessian-eigenthings", "20 steps", lambda k=k: _eigenthings(case, k)),
            ("curvlinops", "curvlinops + eigsh", "tol 1e-3", lambda k=k: _curvlinops(case, k)),
        ):
            if installed(peer):
                runs.append((name, setting, job))
            elif k == size.top_k[0]:
                skipped.append(peer)
        for name, setting, job in runs:
            try:
                (values, products), seconds = timed(job, device)
                error = f"{relative_error(values, reference):.1e}"
                lines.append(f"| top-{k} | {name} | {setting} | {seconds:.2f} | {products} | {error} |")
            except Exception as error:  # a peer failing on this model is reported, not fatal
                lines.append(f"| top-{k} | {name} | {setting} | failed: {type(error).__name__}: {error} | | |")
    op = HessianOperator(model, F.cross_entropy, (inputs, targets))
    reference_trace = hessian_trace(op, method="hutch++", num_samples=10 * size.peer_iterations, seed=1)
    result, seconds = timed(lambda: hessian_trace(op, method="hutch++", num_samples=30, seed=2), device)
    error = abs(result.estimate / reference_trace.estimate - 1)
    lines.append(f"| trace | workbench Hutch++ | 30 products | {seconds:.2f} | {result.num_hvps} | {error:.1e} |")
    if installed("pyhessian"):
        lines.append(_pyhessian_trace(case, reference_trace.estimate, device, size.peer_iterations))
    if skipped:
        lines += ["", f"Not installed, skipped: {', '.join(skipped)}."]
    lines.append(
        f"\nReferences: top-k by workbench Lanczos at tol {size.reference_tol:g}; trace by Hutch++ with "
        f"{reference_trace.num_hvps} "
        f"products (± {reference_trace.stderr / abs(reference_trace.estimate):.1%})."
    )
    return lines


def _ours(case: Case, k: int) -> tuple[np.ndarray, int]:
    op = HessianOperator(case.model, F.cross_entropy, (case.inputs, case.targets))
    result = top_eigenpairs(op, k=k, tol=1e-3, max_iter=3000)
    return result.eigenvalues.double().cpu().numpy(), result.num_hvps


def _peer(case: Case, k: int, size: Size) -> tuple[np.ndarray, int]:
    run, values = run_pyhessian(case, k, 1e-3, size.peer_iterations)
    return np.asarray(values, dtype=float), run.hvps


def _eigenthings(case: Case, k: int) -> tuple[np.ndarray, int]:
    run, values = run_eigenthings(case, k, max(20, 2 * k))
    return np.asarray(values, dtype=float), run.hvps


def _curvlinops(case: Case, k: int) -> tuple[np.ndarray, int]:
    run, values = run_curvlinops(case, k, 1e-3)
    return np.asarray(values, dtype=float), run.hvps


def _pyhessian_trace(case: Case, reference: float, device: torch.device, iterations: int) -> str:
    from pyhessian import hessian

    torch.manual_seed(0)
    engine = hessian(case.model, F.cross_entropy, data=(case.inputs, case.targets), cuda=device.type == "cuda")
    values, seconds = timed(lambda: engine.trace(maxIter=iterations, tol=1e-3), device)
    case.model.zero_grad(set_to_none=True)
    error = abs(float(np.mean(values)) / reference - 1)
    setting = f"tol 1e-3, maxIter {iterations}"
    return f"| trace | PyHessian Hutchinson | {setting} | {seconds:.2f} | {len(values)} | {error:.1e} |"


# -- 2. optimizer steps -------------------------------------------------------------------------------------------


def minimal_sam(model: nn.Module, closure: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """The hand-written SAM step (one saved copy of θ), for reference."""
    params = list(model.parameters())
    base = torch.optim.SGD(params, **BASE)

    def step() -> None:
        closure()
        with torch.no_grad():
            scale = 0.05 / torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
            saved = [p.detach().clone() for p in params]
            for p in params:
                p.add_(p.grad * scale)
        base.zero_grad()
        closure()
        with torch.no_grad():
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)
        base.step()
        base.zero_grad()

    return step


def steps_section(size: Size, device: torch.device) -> list[str]:
    template = resnet(size, device)
    inputs, targets = image_batch(size, size.batch, device, seed=2)
    lines = [
        f"### 2. Optimizer steps: ResNet-18 (width {size.width}), batch {size.batch}",
        "",
        "| precision | optimizer | ms/step | × SAM | peak memory per step MiB | host reads per step: plain / refresh |",
        "|---|---|---:|---:|---:|---|",
    ]
    for precision in ("float32", "bfloat16 autocast"):
        autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision != "float32" else nullcontext()
        )
        rows = {}
        xsam_window = max(size.timed_steps, size.xsam_freq)
        for name, factory, options, window in (
            ("SGD", None, {}, size.timed_steps),
            ("minimal SAM loop", "minimal", {}, size.timed_steps),
            ("SAM", SAM, {}, size.timed_steps),
            (f"Eigen-SAM (freq {size.eigen_freq}, ritz tol 0.05: default)", EigenSAM, {"freq": size.eigen_freq},
             size.eigen_freq),
            (f"Eigen-SAM (freq {size.eigen_freq}, power 5: published)", EigenSAM,
             {"freq": size.eigen_freq, "refresh": "power"}, size.eigen_freq),
            (f"X-SAM (freq {size.xsam_freq}, ritz tol 0.05: default)", XSAM, {"freq": size.xsam_freq}, xsam_window),
            (f"X-SAM (freq {size.xsam_freq}, power 5: published)", XSAM, {"freq": size.xsam_freq, "refresh": "power"},
             xsam_window),
        ):  # fmt: skip
            model = copy.deepcopy(template)

            def closure(model: nn.Module = model, autocast: object = autocast) -> torch.Tensor:
                with autocast:
                    outputs = model(inputs)
                loss = F.cross_entropy(outputs.float(), targets)
                loss.backward()
                return loss

            def float32_closure(model: nn.Module = model) -> torch.Tensor:  # the refresh, as the Trainer runs it
                loss = F.cross_entropy(model(inputs), targets)
                loss.backward()
                return loss

            step, optimizer = _stepper(model, closure, float32_closure, factory, options)
            for _ in range(window):  # warm-up: past the first refresh
                step()
            seconds = statistics.median(
                timed(lambda step=step, window=window: [step() for _ in range(window)], device)[1] / window
                for _ in range(size.repeats)
            )
            peak = _peak_mib(step, device)
            reads = _host_reads(step, optimizer)
            rows[name] = (seconds, peak, reads)
        sam = rows["SAM"][0]
        for name, (seconds, peak, reads) in rows.items():
            lines.append(f"| {precision} | {name} | {1e3 * seconds:.1f} | {seconds / sam:.3f} | {peak:.1f} | {reads} |")
    return lines


def _stepper(
    model: nn.Module,
    closure: Callable[[], torch.Tensor],
    refresh_closure: Callable[[], torch.Tensor],
    factory: object,
    options: dict,
) -> tuple[Callable[[], None], torch.optim.Optimizer | None]:
    """One training step of ``factory`` (None: plain SGD; "minimal": the minimal SAM loop; else a workbench
    optimizer class, whose eigenvector refresh runs ``refresh_closure``: float32 under autocast, as in ``Trainer``)."""
    if factory is None:
        sgd = torch.optim.SGD(model.parameters(), **BASE)

        def sgd_step() -> None:
            sgd.zero_grad()
            closure()
            sgd.step()

        return sgd_step, None
    if factory == "minimal":
        return minimal_sam(model, closure), None
    optimizer = factory(model.parameters(), model=model, **options, **BASE)
    return lambda: optimizer.step(closure, refresh_closure=refresh_closure), optimizer


def _peak_mib(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return peak_tensor_bytes(step) / 2**20


def _host_reads(step: Callable[[], None], optimizer: torch.optim.Optimizer | None) -> str:
    """Host reads during a plain step and during a refresh step (the latter for eigenvector methods only)."""
    tracker = getattr(optimizer, "tracker", None)
    counts = {}
    for _ in range(200):
        refreshing = tracker is not None and tracker.due(optimizer.step_count)
        kind = "refresh" if refreshing else "plain"
        if kind not in counts:
            with HostSyncCounter() as counter:
                step()
            counts[kind] = counter.total
        else:
            step()
        if "plain" in counts and (tracker is None or "refresh" in counts):
            break
    return " / ".join(str(counts.get(kind, "-")) for kind in ("plain", "refresh"))


# -- 3. landscape -------------------------------------------------------------------------------------------------


def landscape_section(size: Size, device: torch.device) -> list[str]:
    model, inputs, targets = landscape_workload("cifar-shaped", size.landscape_batch, seed=0)
    model, inputs, targets = model.to(device), inputs.to(device), targets.to(device)
    d1 = random_filter_normalized_direction(model, seed=1)
    d2 = random_filter_normalized_direction(model, seed=2)
    xs = np.linspace(-1.0, 1.0, size.grid)
    methods: dict[str, dict] = {
        "default (automatic)": {},
        "point by point": {"vectorize": False, "torch_compile": False},
        "vmap, chunk 16": {"vectorize": True, "torch_compile": False},
    }
    if size.compile_landscape:
        methods["compiled point by point"] = {"vectorize": False, "torch_compile": True}
        methods["compiled vmap, chunk 16"] = {"vectorize": True, "torch_compile": True}
    lines = [
        f"### 3. Landscape: {size.grid}×{size.grid} slice of the CIFAR-shaped CNN, batch {size.landscape_batch}",
        "",
        "| method | first call s | second call s | × loop (second call) | max abs diff from loop |",
        "|---|---:|---:|---:|---:|",
    ]
    reference, loop_seconds = timed(lambda: loop_grid(model, inputs, targets, d1, d2, xs, xs), device)
    lines.append(f"| in-place loop | {loop_seconds:.2f} | | 1.00 | 0 |")
    for name, options in methods.items():

        def call(options: dict = options) -> np.ndarray:
            return loss_slice_2d(model, F.cross_entropy, (inputs, targets), d1, d2, xs, xs, **options).loss

        grid, first = timed(call, device)
        _, second = timed(call, device)
        difference = float(np.abs(grid - reference).max())
        lines.append(f"| {name} | {first:.2f} | {second:.2f} | {loop_seconds / second:.2f} | {difference:.1e} |")
    if not size.compile_landscape:
        lines.append("\nCompiled methods skipped (--tiny).")
    return lines


# -- 4. training --------------------------------------------------------------------------------------------------


def cifar_shaped_splits(size: Size, train: int, test: int) -> DatasetSplits:
    """Learnable CIFAR-shaped images: 0.15 × one of ten smooth class templates plus unit noise."""
    generator = torch.Generator().manual_seed(0)
    templates = F.interpolate(torch.randn(10, 3, 8, 8, generator=generator), size=size.image, mode="bilinear")
    labels = torch.randint(0, 10, (train + test,), generator=generator)
    images = 0.15 * templates[labels] + torch.randn(train + test, 3, size.image, size.image, generator=generator)
    return DatasetSplits(
        name="cifar-shaped",
        train=TensorDataset(images[:train], labels[:train]),
        test=TensorDataset(images[train:], labels[train:]),
        num_classes=10,
        input_shape=(3, size.image, size.image),
        class_names=tuple(str(k) for k in range(10)),
        description="synthetic CIFAR-shaped images (class template + noise)",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )


def training_section(size: Size, device: torch.device) -> list[str]:
    splits = cifar_shaped_splits(size, train=size.train_steps * size.train_batch, test=4 * size.train_batch)
    lines = [
        f"### 4. Training: {size.train_steps} steps (one epoch) of ResNet-18 (width {size.width}), batch "
        f"{size.train_batch}, probes every {size.probe_every} steps on {size.probe_batch} samples",
        "",
        "| optimizer | status | wall s | steps/s | probes | final train loss | final λ1 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for optimizer in ("sgd", "sam", "eigensam", "xsam"):
        config = TrainConfig(
            dataset="cifar10",  # the name only; the data are the synthetic splits passed below
            model="resnet18",
            model_options={"width": size.width},
            optimizer=optimizer,
            freq=size.eigen_freq if optimizer == "eigensam" else None,
            batch_size=size.train_batch,
            steps=size.train_steps,
            probe_every=size.probe_every,
            probe_batch_size=size.probe_batch,
            trace_samples=size.trace_samples,
            device=str(device),
        )
        trainer = Trainer(config, data=splits)
        result, seconds = timed(trainer.run, device)
        probes = len(trainer.history.series("lambda_1"))
        last_lambda, last_loss = trainer.history.last("lambda_1"), trainer.history.last("train_loss")
        lines.append(
            f"| {optimizer} | {result.status} | {seconds:.1f} | {result.steps / seconds:.1f} | {probes} | "
            f"{last_loss:.3f} | {last_lambda:.4g} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run of every section")
    args = parser.parse_args()
    device = resolve_device(args.device)
    size = TINY if args.tiny else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    header = [
        f"## GPU suite: {name}, torch {torch.__version__}"
        + (" (--tiny smoke run: not a measurement)" if args.tiny else ""),
        "",
    ]
    blocks = []
    start = time.perf_counter()
    for section in (curvature_section, steps_section, landscape_section, training_section):
        log(f"{section.__name__} ...")
        section_start = time.perf_counter()
        blocks.append(section(size, device))
        log(f"{section.__name__}: {time.perf_counter() - section_start:.1f} s")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    footer = [
        f"Total {time.perf_counter() - start:.0f} s. Command: `python benchmarks/gpu_suite.py {' '.join(sys.argv[1:])}`"
    ]
    print("\n".join(header + [line for block in blocks for line in [*block, ""]] + footer))


if __name__ == "__main__":
    main()
