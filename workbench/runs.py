"""Runs on disk: train one config into a run folder with its report, and the main comparison job.

The reports need plotly (the ``viz`` extra); on a core install ``train_run`` writes the run folder without one and
says how to get it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from workbench.datasets import DatasetSplits, load_dataset
from workbench.distributed import distributed_context, main_first, release_process_group, training_device
from workbench.train import TrainConfig, Trainer, TrainEvent, TrainResult
from workbench.train.run_folder import REPORT_FILE, RunFolder

# The main job: the four methods the papers compare, one seed, one budget, each with its paper's ρ/α.
DEMO_OPTIMIZERS = {"sgd": {}, "sam": {"rho": 0.05}, "eigensam": {"rho": 0.05, "freq": 10}, "xsam": {"rho": 0.05}}
DEMO_CONFIG = TrainConfig(
    dataset="mnist1d",
    model="cnn",
    lr=0.05,
    batch_size=128,
    epochs=20,
    probe_every=50,
    probe_batch_size=512,
    trace_samples=24,
    seed=0,
)
QUICK_DEMO_CHANGES = {"epochs": 1, "steps": 12, "probe_every": 6, "trace_samples": 6, "probe_batch_size": 128}


def train_run(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    data: DatasetSplits | None = None,
    data_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``config`` into the run folder ``run_dir`` (config, history, checkpoint, summary) and write its
    report (when plotly is installed; otherwise a warning says how to get it).

    ``data``: the loaded dataset (default: ``config``'s, read from the data root ``data_dir``; None resolves it as
    ``workbench.datasets.resolve_data_root`` documents).

    Started by torchrun (several processes), each process trains its shard and rank 0 alone loads the data first
    (the others then read its cache), writes the folder, shows progress and writes the report; every process
    returns the result.
    """
    folder = RunFolder(run_dir)
    context = distributed_context(training_device(config.device))
    try:
        if data is None:
            with main_first(context):
                data = _load_data(config, data_dir)
        trainer = Trainer(config, run_dir=folder.path, data=data)
        with _progress_bar(trainer, progress and trainer.is_main, folder.name) as update:
            trainer.callbacks.append(update)
            result = trainer.run()
    finally:
        release_process_group()
    if not trainer.is_main:
        return result
    try:
        from workbench.viz import load_runs, write_report
    except ImportError as error:  # a core install: the run folder is complete without its report
        warnings.warn(f'no {REPORT_FILE} ({error}); pip install "workbench[viz]" for reports', stacklevel=2)
        return result
    write_report(load_runs([folder.path]), folder.report, title=f"{folder.name}: {result.reason}")
    return result


def run_demo(
    output: str | Path, *, quick: bool = False, progress: bool = True, data_dir: str | Path | None = None
) -> Path:
    """Train SGD, SAM, Eigen-SAM and X-SAM with the same seed and budget; return the comparison report's path.

    ``data_dir``: the data root MNIST-1D is cached in (None: resolved as ``resolve_data_root`` documents).
    """
    from workbench.viz import load_runs, write_report

    output = Path(output)
    base = DEMO_CONFIG.replace(**QUICK_DEMO_CHANGES) if quick else DEMO_CONFIG
    data = _load_data(base, data_dir)
    run_dirs = []
    for name, options in DEMO_OPTIMIZERS.items():
        train_run(base.replace(optimizer=name, **options), output / name, progress=progress, data=data)
        run_dirs.append(output / name)
    notes = (
        f"{base.dataset} / {base.model}, {base.epochs if base.steps is None else base.steps} "
        f"{'epochs' if base.steps is None else 'steps'}, batch {base.batch_size}, lr {base.lr} (cosine), seed "
        f"{base.seed}; probes every {base.probe_every} steps on {base.probe_batch_size} training samples."
    )
    return write_report(
        load_runs(run_dirs), output / REPORT_FILE, title="SGD vs SAM vs Eigen-SAM vs X-SAM", notes=notes
    )


def _load_data(config: TrainConfig, data_dir: str | Path | None) -> DatasetSplits:
    """The dataset ``config`` names, read from (or cached under) the data root ``data_dir``."""
    return load_dataset(config.dataset, root=data_dir, seed=config.seed, **config.dataset_options)


@contextmanager
def _progress_bar(trainer: Trainer, enabled: bool, label: str) -> Iterator[Callable[[TrainEvent], None]]:
    """Yield a Trainer callback that advances a tqdm bar (a disabled bar when ``enabled`` is false)."""
    bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc=label, unit="step", disable=not enabled)

    def update(event: TrainEvent) -> None:
        if event.kind == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{event.values['train_loss']:.3f}", refresh=False)

    try:
        yield update
    finally:
        bar.close()
