"""Runs on disk: train one config into a new run folder with its report, continue one from its checkpoint, and
the main comparison job. A folder that already holds a run is never replaced unless asked (``overwrite``).

The reports need plotly (the ``viz`` extra); on a core install ``train_run`` writes the run folder without one and
says how to get it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist
from tqdm.auto import tqdm

from workbench.datasets import DatasetSplits, load_dataset
from workbench.distributed import distributed_context, main_first, release_process_group, training_device
from workbench.distributed.context import launched_rank
from workbench.train import TrainConfig, Trainer, TrainEvent, TrainResult
from workbench.train.checkpoint import read_checkpoint
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
    overwrite: bool = False,
) -> TrainResult:
    """Train ``config`` into the run folder ``run_dir`` (config, history, checkpoint, summary) and write its
    report (when plotly is installed; otherwise a warning says how to get it).

    ``data``: the loaded dataset (default: ``config``'s, read from the data root ``data_dir``; None resolves it as
    ``workbench.datasets.resolve_data_root`` documents). The folder must be new or empty; with ``overwrite`` the
    files of a run there are removed first. Files that are not a run's are never removed: a folder holding any is
    refused.

    Started by torchrun (several processes), each process trains its shard; rank 0 alone checks and holds the
    folder, loads the data first (the others then read its cache), writes the folder, shows progress and writes
    the report; every process returns the result.

    Raises:
        ValueError: naming the folder when it holds files (a run, unless ``overwrite``), cannot be written, or is
            in use by another process; all before any data is loaded.
    """
    folder = RunFolder(run_dir)
    with _held_by_main(folder):
        context = distributed_context(training_device(config.device))
        try:
            with main_first(context):
                if context is None or context.is_main:
                    _check_new(folder, overwrite=overwrite)
                    folder.remove_run_files()
                data = data if data is not None else _load_data(config, data_dir)
            return _train_and_report(Trainer(config, run_dir=folder.path, data=data), folder, progress)
        finally:
            release_process_group()


def resume_run(
    run_dir: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    progress: bool = True,
    data: DatasetSplits | None = None,
    data_dir: str | Path | None = None,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, exactly (on CPU, the history equals that of a run
    never interrupted), then write its report; a run that already finished is left as it is. A distributed run
    resumes on as many processes as it was trained on (``Trainer.load_state_dict`` checks).

    Args:
        run_dir: a run folder with checkpoint.pt.
        options: config options the caller gave (e.g. the command line's); each must equal the run's (for
            ``dataset_options`` and ``model_options``: each key given). The run continues with its own config.
        data, data_dir: the loaded dataset, or the data root to read it from (as for ``train_run``).

    Raises:
        ValueError: naming the folder or file when there is nothing to resume (no folder, no checkpoint), the
            checkpoint cannot be trusted (``read_checkpoint``), an option differs from the run's (naming them), the
            run diverged, or another process holds the folder; all before any data is loaded.
    """
    folder = RunFolder(run_dir)
    if not folder.path.is_dir():
        raise ValueError(f"run folder {folder.path} does not exist: there is no run to resume")
    with _held_by_main(folder):
        if not folder.has_checkpoint():
            raise ValueError(
                f"run folder {folder.path} has no {folder.checkpoint.name} to resume from (a run writes one every "
                "checkpoint_every steps, at pauses and at its end); --overwrite starts it again"
            )
        state = read_checkpoint(folder.checkpoint)
        _check_same_options(folder, state["config"], options or {})
        summary = folder.read_summary() or {}
        if summary.get("status") == "diverged":
            raise ValueError(
                f"the run in {folder.path} diverged ({summary.get('reason')}); its checkpoint holds the diverged "
                "weights: --overwrite trains it again"
            )
        if summary.get("status") == "finished" and summary.get("steps") == state["step"]:
            return TrainResult(
                "finished",
                f"{summary.get('reason')}; it had finished already, nothing to resume",
                state["step"],
                float(summary.get("seconds") or 0.0),
                summary.get("final") or {},
                summary.get("final_step"),
            )
        config = TrainConfig.from_dict(state["config"])
        context = distributed_context(training_device(config.device))
        try:
            with main_first(context):
                data = data if data is not None else _load_data(config, data_dir)
            trainer = Trainer.from_checkpoint(folder.checkpoint, run_dir=folder.path, data=data)
            return _train_and_report(trainer, folder, progress)
        finally:
            release_process_group()


@contextmanager
def _held_by_main(folder: RunFolder) -> Iterator[None]:
    """Hold ``folder``'s lock in a single process or rank 0 of a launched run (the process that writes it)."""
    rank = dist.get_rank() if dist.is_initialized() else launched_rank()
    if rank != 0:
        yield
        return
    with folder.lock():
        yield


def _check_new(folder: RunFolder, *, overwrite: bool) -> None:
    """Refuse a folder holding files that are not a run's, and one holding a run unless ``overwrite``."""
    foreign = folder.foreign_entries()
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"run folder {folder.path} holds files that are not a run's ({shown}); choose a new folder")
    if folder.run_entries() and not overwrite:
        raise ValueError(
            f"run folder {folder.path} already holds a run ({', '.join(folder.run_entries())}): continue it from its "
            "last checkpoint with --resume, or replace it with --overwrite"
        )


def _check_same_options(folder: RunFolder, saved: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Refuse options that differ from the run's config (for the ``*_options`` mappings: the keys given)."""
    differing = []
    for name, value in options.items():
        if name.endswith("_options") and isinstance(value, Mapping):
            run_value = saved.get(name) or {}
            differing += [
                (f"{name}.{key}", run_value.get(key), item) for key, item in value.items() if run_value.get(key) != item
            ]
        elif _normal(value) != _normal(saved.get(name)):
            differing.append((name, saved.get(name), value))
    if differing:
        changes = "; ".join(f"{name} is {run!r} in the run, {given!r} here" for name, run, given in differing)
        raise ValueError(
            f"--resume continues the run in {folder.path} with its own config, and these options differ from it: "
            f"{changes}"
        )


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _train_and_report(trainer: Trainer, folder: RunFolder, progress: bool) -> TrainResult:
    with _progress_bar(trainer, progress and trainer.is_main, folder.name) as update:
        trainer.callbacks.append(update)
        result = trainer.run()
    if not trainer.is_main:
        return result
    try:
        from workbench.viz import load_runs, write_report
    except ImportError as error:  # a core install: the run folder is complete without its report
        warnings.warn(f'no {REPORT_FILE} ({error}); pip install "workbench[viz]" for reports', stacklevel=3)
        return result
    write_report(load_runs([folder.path]), folder.report, title=f"{folder.name}: {result.reason}")
    return result


def run_demo(
    output: str | Path,
    *,
    quick: bool = False,
    progress: bool = True,
    data_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Train SGD, SAM, Eigen-SAM and X-SAM with the same seed and budget; return the comparison report's path.

    ``data_dir``: the data root MNIST-1D is cached in (None: resolved as ``resolve_data_root`` documents).

    Raises:
        ValueError: when a run folder of ``output`` already holds a run and ``overwrite`` is false (checked for all
            four before the first one trains).
    """
    from workbench.viz import load_runs, write_report

    output = Path(output)
    for name in DEMO_OPTIMIZERS:
        _check_new(RunFolder(output / name), overwrite=overwrite)
    base = DEMO_CONFIG.replace(**QUICK_DEMO_CHANGES) if quick else DEMO_CONFIG
    data = _load_data(base, data_dir)
    run_dirs = []
    for name, options in DEMO_OPTIMIZERS.items():
        config = base.replace(optimizer=name, **options)
        train_run(config, output / name, progress=progress, data=data, overwrite=overwrite)
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
