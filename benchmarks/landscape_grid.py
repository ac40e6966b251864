"""51×51 loss-landscape grid of a small CNN: batched ``loss_slice_2d`` (vmap over stacked parameter sets) against
the per-point loop researchers write by hand (perturb the weights in place, forward, restore), in one process.

Prints, for each evaluation method of the library, the largest difference from the loop's grid and the speed
ratio (loop time / method time, medians over ``--repeats`` alternating runs), and the time of its first call on
one grid row (which includes vmap's set-up and, with ``--compile``, the compilation). Two workloads:

* ``digits``: sklearn's 8×8 digits (ships with scikit-learn), 1×8×8 images: little work per forward pass.
* ``cifar-shaped``: random 3×32×32 images: a forward pass that is compute- and memory-bound on a CPU.
* ``digits-mlp``: the same digits, flattened, through an MLP 64-128-128-10 (26,122 parameters).

``--end-to-end`` instead times ``loss_slice_2d`` with its default arguments over the whole grid in a fresh
process, its first call included (the automatic choice, and ``torch.compile``'s compilation where it chooses to
compile, with an empty inductor cache unless ``--warm-inductor-cache``), then a second call (the compiled forward
cached in the process), against the loop timed on ``--loop-rows`` rows before and after (per-point cost does not
depend on the row) and extrapolated to the grid; in CPU seconds, compilers included (see ``end_to_end``). It
also prints the time of the model's convolutions alone, the floor of any float32 evaluation of the grid.

Example:
    python benchmarks/landscape_grid.py --data digits --chunk-sizes 4 16 64 --compile --repeats 3
    python benchmarks/landscape_grid.py --data cifar-shaped --end-to-end --loop-rows 3
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from workbench.probes import loss_slice_2d, random_filter_normalized_direction


class SmallCNN(nn.Module):
    """conv(16) → BatchNorm → ReLU → pool → conv(32) → ReLU → pool → linear(10)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.head = nn.Linear(32 * (size // 4) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def make_workload(kind: str, batch: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model (BatchNorm statistics set by a few train-mode passes) and one batch of inputs and labels."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "digits-mlp":
        digits = load_digits()
        pick = torch.randperm(len(digits.target), generator=generator)[:batch]
        inputs = torch.tensor(digits.data[pick.numpy()], dtype=torch.float32) / 16.0
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
        return model.eval(), inputs, torch.tensor(digits.target[pick.numpy()])
    if kind == "digits":
        digits = load_digits()
        pick = torch.randperm(len(digits.target), generator=generator)[:batch]
        inputs = torch.tensor(digits.images[pick.numpy()], dtype=torch.float32).unsqueeze(1) / 16.0
        targets = torch.tensor(digits.target[pick.numpy()])
    else:
        inputs = torch.randn(batch, 3, 32, 32, generator=generator)
        targets = torch.randint(0, 10, (batch,), generator=generator)
    torch.manual_seed(seed)
    model = SmallCNN(inputs.shape[1], inputs.shape[2])
    with torch.no_grad():
        for _ in range(3):
            model(inputs)
    return model.eval(), inputs, targets


def loop_grid(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, d1, d2, xs, ys) -> np.ndarray:
    """The hand-written reference: for each grid point perturb the parameters in place, forward, restore."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    pieces1 = torch.split(d1, [p.numel() for p in params])
    pieces2 = torch.split(d2, [p.numel() for p in params])
    losses = np.empty((len(ys), len(xs)))
    with torch.no_grad():
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                for p, u, v in zip(params, pieces1, pieces2, strict=True):
                    p.add_(float(x) * u.view_as(p) + float(y) * v.view_as(p))
                losses[i, j] = float(F.cross_entropy(model(inputs), targets))
                for p, value in zip(params, saved, strict=True):
                    p.copy_(value)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["digits", "cifar-shaped", "digits-mlp"], default="digits")
    parser.add_argument("--grid", type=int, default=51, help="points per axis")
    parser.add_argument("--rows", type=int, default=None, help="evaluate only the first ROWS rows of the grid")
    parser.add_argument("--batch", type=int, default=256, help="images in the batch")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[16], help="grid points per vmap call")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile paths")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and inputs (all peers)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end-to-end", action="store_true", help="time the default call, first call included")
    parser.add_argument("--loop-rows", type=int, default=3, help="rows the loop is timed on with --end-to-end")
    parser.add_argument("--warm-inductor-cache", action="store_true", help="keep torch.compile's on-disk cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.end_to_end:
        end_to_end(args)
        return

    model, inputs, targets = make_workload(args.data, args.batch, args.seed)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    d1 = random_filter_normalized_direction(model, seed=args.seed + 1)
    d2 = random_filter_normalized_direction(model, seed=args.seed + 2)
    xs = np.linspace(-1.0, 1.0, args.grid)
    ys = xs[: args.rows]
    points = xs.size * ys.size
    print(
        f"{args.data}: {args.grid}x{args.grid} grid, {points} points timed, batch {args.batch}, "
        f"{sum(p.numel() for p in model.parameters())} parameters, torch {torch.__version__}, {args.threads} threads"
        + (", channels-last" if args.channels_last else "")
    )

    methods = {"per point": {"vectorize": False}}
    methods.update({f"vmap chunk {c}": {"vectorize": True, "chunk_size": c} for c in args.chunk_sizes})
    if args.compile:
        methods["compiled per point"] = {"vectorize": False, "torch_compile": True}
        for chunk in args.chunk_sizes:
            methods[f"compiled vmap {chunk}"] = {"vectorize": True, "chunk_size": chunk, "torch_compile": True}

    def batched(options: dict, rows: np.ndarray) -> np.ndarray:
        return loss_slice_2d(model, F.cross_entropy, (inputs, targets), d1, d2, xs, rows, **options).loss

    first_call = {}
    for name, options in methods.items():  # warm up: vmap's batching rules, torch.compile's compilation
        start = time.perf_counter()
        batched(options, ys[:1])
        first_call[name] = time.perf_counter() - start

    times: dict[str, list[float]] = {"loop (in place)": []}
    grids: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        grids["loop (in place)"] = loop_grid(model, inputs, targets, d1, d2, xs, ys)
        times["loop (in place)"].append(time.perf_counter() - start)
        for name, options in methods.items():
            start = time.perf_counter()
            grids[name] = batched(options, ys)
            times.setdefault(name, []).append(time.perf_counter() - start)

    loop_median = statistics.median(times["loop (in place)"])
    print(f"{'method':<22} {'ms/point':>9} {'speed-up':>9} {'max |diff|':>11} {'first row s':>12}   runs (s)")
    for name, runs in times.items():
        median = statistics.median(runs)
        difference = float(np.abs(grids[name] - grids["loop (in place)"]).max())
        warm = f"{first_call[name]:12.2f}" if name in first_call else f"{'':12}"
        print(
            f"{name:<22} {1e3 * median / points:9.3f} {loop_median / median:8.2f}x {difference:11.2e} {warm}"
            f"   {', '.join(f'{r:.2f}' for r in runs)}"
        )


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the C++ compiler runs that torch.compile starts)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def convolution_seconds(model: nn.Module, inputs: torch.Tensor, repeats: int = 5) -> float:
    """CPU seconds per forward pass spent inside the model's convolution modules alone (timed by forward hooks), on
    an eval-mode, channels-last copy without gradients: the floor of any float32 evaluation that runs the model's
    convolutions once per point (0 for a model without any)."""
    twin = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    batch = inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs
    spent = [0.0]
    starts: list[float] = []
    convolutions = [module for module in twin.modules() if isinstance(module, nn.modules.conv._ConvNd)]
    for module in convolutions:
        module.register_forward_pre_hook(lambda *_: starts.append(time.process_time()))
        module.register_forward_hook(lambda *_: spent.__setitem__(0, spent[0] + time.process_time() - starts.pop()))
    with torch.no_grad():
        twin(batch)
        spent[0] = 0.0
        for _ in range(repeats):
            twin(batch)
    return spent[0] / repeats


def end_to_end(args: argparse.Namespace) -> None:
    """The default ``loss_slice_2d`` call on the whole grid, first call included, against the extrapolated loop.

    Times are CPU seconds of this process plus its finished children (torch.compile runs its compilers in this
    process here, ``compile_threads = 1``, so that they are counted), which a loaded machine disturbs far less than
    wall-clock time; wall-clock seconds are printed too.
    """
    if not args.warm_inductor_cache:  # an empty on-disk cache: the first call pays the whole compilation
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    torch._inductor.config.compile_threads = 1
    model, inputs, targets = make_workload(args.data, args.batch, args.seed)
    d1 = random_filter_normalized_direction(model, seed=args.seed + 1)
    d2 = random_filter_normalized_direction(model, seed=args.seed + 2)
    xs = np.linspace(-1.0, 1.0, args.grid)
    loop_rows = xs[: args.loop_rows]
    points = xs.size**2
    print(
        f"{args.data}: {args.grid}x{args.grid} grid, batch {args.batch}, {sum(p.numel() for p in model.parameters())} "
        f"parameters, torch {torch.__version__}, {args.threads} threads; loop timed on {loop_rows.size} rows"
    )

    def loop_per_point() -> tuple[float, np.ndarray]:
        start = cpu_seconds()
        grid = loop_grid(model, inputs, targets, d1, d2, xs, loop_rows)
        return (cpu_seconds() - start) / (xs.size * loop_rows.size), grid

    loop_times, reference = [], None
    for _ in range(args.repeats):
        seconds, reference = loop_per_point()
        loop_times.append(seconds)
    calls = []
    for _ in range(2):  # first call: choice and compilation included; second: the compiled forward cached
        start, wall = cpu_seconds(), time.perf_counter()
        result = loss_slice_2d(model, F.cross_entropy, (inputs, targets), d1, d2, xs, xs).loss
        calls.append((cpu_seconds() - start, time.perf_counter() - wall))
    for _ in range(args.repeats):
        loop_times.append(loop_per_point()[0])
    loop_grid_seconds = statistics.median(loop_times) * points
    difference = float(np.abs(result[: loop_rows.size] - reference).max())
    runs = ", ".join(f"{1e3 * seconds:.2f}" for seconds in loop_times)
    print(f"loop: {1e3 * statistics.median(loop_times):.3f} CPU ms/point (runs {runs}),")
    print(f"  {loop_grid_seconds:.1f} CPU s for the grid (extrapolated)")
    for name, (seconds, wall) in zip(("default, first call", "default, second call"), calls, strict=True):
        print(f"{name}: {seconds:.1f} CPU s ({wall:.1f} s wall) = {loop_grid_seconds / seconds:.2f}x the loop's speed")
    print(f"max |diff| from the loop on its rows: {difference:.1e}")
    floor = convolution_seconds(model, inputs)
    if floor > 0:
        print(
            f"convolutions alone (channels-last, no autograd): {1e3 * floor:.3f} ms/point, {floor * points:.1f} s for "
            f"the grid: a float32 evaluation that runs them once per point reaches at most "
            f"{loop_grid_seconds / (floor * points):.2f}x the loop, compilation not counted"
        )


if __name__ == "__main__":
    main()
