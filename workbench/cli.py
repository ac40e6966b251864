"""The ``workbench`` command: ``train``, ``report``, ``demo`` (the README's main job), ``batch run|collect``,
``list`` (the registered optimizers, datasets and models with their options) and ``data list|prepare`` (what is on
disk under the data root). Also ``python -m workbench``.

Bad options exit with status 2 and a message naming the option (or the file) and its allowed values, before any
data is loaded; a run folder that already holds a run is refused unless ``--resume`` or ``--overwrite`` says what to
do with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench._checks import check_writable_folder
from workbench._options import check_options
from workbench.datasets import DATASETS, dataset_options, dataset_summary
from workbench.distributed.passes import ReplicaLostError
from workbench.models import MODELS, model_options, model_summary
from workbench.optim import OPTIMIZER_NAMES, OPTIMIZERS
from workbench.optim.registry import option_choices
from workbench.train import RHO_SCHEDULES, SCHEDULES, TrainConfig
from workbench.train.config import PERTURBATION_SYNCS
from workbench.train.run_folder import RUN_FILES, RunFolder

USAGE_ERROR = 2
DATA_DIR_HELP = (
    "data root: where datasets are read, cached and downloaded (default: $WORKBENCH_DATA, else the checkout's "
    "data/, else ~/.cache/workbench; data/README.md)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script; returns the exit status."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except ReplicaLostError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the file system refused (disk full, permissions): not a bug, no traceback
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted; what was computed so far is on disk", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="SAM geometry workbench: train with SAM, Eigen-SAM, X-SAM and relatives while probing the "
        "Hessian; compare runs; run notebooks over parameter grids.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one model; writes a run directory with a report")
    train.add_argument("--config", type=_path, help="JSON or YAML file of TrainConfig options (flags override it)")
    train.add_argument(
        "--run-dir",
        type=_path,
        default=Path("runs/train"),
        help="run folder (default runs/train); one that already holds a run needs --resume or --overwrite",
    )
    existing = train.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint, exactly, with its own config (options given "
        "must equal the run's)",
    )
    existing.add_argument(
        "--overwrite", action="store_true", help="remove the run in --run-dir (only a run's files) and train anew"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
    train.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="train on N processes of this machine (one per GPU, or CPU processes) through torchrun; rank 0 writes "
        "the run folder (README: Scaling out)",
    )
    _add_config_flags(train)
    train.set_defaults(handler=_train_command)

    report = commands.add_parser("report", help="build an HTML report comparing run directories")
    report.add_argument("run_dirs", nargs="+", type=_path, help="run directories (each with history.csv)")
    report.add_argument(
        "--output",
        type=_path,
        default=Path("report.html"),
        help="the one file written: the HTML report (default report.html); never a run folder's own file",
    )
    report.add_argument("--title", default="Run comparison", help="report title")
    report.set_defaults(handler=_report_command)

    demo = commands.add_parser(
        "demo", help="main job: SGD, SAM, Eigen-SAM and X-SAM on MNIST-1D, same seed and budget, one report"
    )
    demo.add_argument("--output", type=_path, default=Path("runs/demo"), help="output directory (default runs/demo)")
    demo.add_argument("--quick", action="store_true", help="a much shorter run (seconds), for smoke tests")
    demo.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier demo in --output")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
    demo.set_defaults(handler=_demo_command)
    _add_batch_commands(commands)
    listing = commands.add_parser(
        "list", help="the registered optimizers, datasets and models, with their options and defaults"
    )
    listing.add_argument(
        "what", nargs="?", choices=LISTS, default=None, help="one of them only (default: all three)"
    )
    listing.set_defaults(handler=_list_command)
    _add_data_commands(commands)
    return parser


def _add_batch_commands(commands: argparse._SubParsersAction) -> None:
    """``workbench batch run GRID.yaml`` and ``workbench batch collect DIR`` (two words: a grid file may be named
    anything, "collect" included)."""
    batch = commands.add_parser("batch", help="run a notebook over a grid of parameters (papermill), then collect")
    actions = batch.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run",
        help="execute a grid file's runs on Dask (a local cluster, or --scheduler); finished runs are skipped, failed "
        "and interrupted re-run",
    )
    run.add_argument("grid", type=_path, help="grid file (YAML; schema in workbench/batch/grid.py and docs)")
    run.add_argument("--output", type=_path, help="batch folder (default runs/<grid file name>)")
    run.add_argument(
        "--workers", type=int, help="worker processes of the local Dask cluster, runs at once (default: CPU cores)"
    )
    run.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="submit the runs to an existing Dask cluster (dask scheduler / dask worker, SLURM, Kubernetes) instead "
        "of a local one; the output folder must be a path its workers share",
    )
    run.add_argument("--threads-per-run", type=int, default=1, help="OMP_NUM_THREADS of each run's kernel (default 1)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default python3)")
    run.add_argument("--dry-run", action="store_true", help="list the runs and their state; execute nothing")
    run.add_argument(
        "--preview",
        action="store_true",
        help="run the grid's shortened version (its 'preview' section, e.g. on a CPU) into runs/<grid>-preview",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--data-dir", type=Path, metavar="DIR", help=f"{DATA_DIR_HELP}; every run reads and caches its data there"
    )
    run.set_defaults(handler=_batch_run_command)
    collect = actions.add_parser(
        "collect", help="gather a batch folder into results.parquet/.csv, summary.md and report.html"
    )
    collect.add_argument("output", type=_path, help="batch folder (written by `workbench batch run`)")
    collect.add_argument("--title", help="report title (default: Batch <folder name>)")
    collect.add_argument(
        "--reference", help="a group to compare every other group with, paired by seed (e.g. sam)", default=None
    )
    collect.set_defaults(handler=_batch_collect_command)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--probe-every 50``, ``--amp/--no-amp``, ``--dataset-option k=v``), with the
    field's help and, for names, the registered choices."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("run options (TrainConfig fields; a --config file sets them too)")
    optimizers = parser.add_argument_group(
        "optimizer options (default: the chosen optimizer's paper value; `workbench list optimizers` shows them)"
    )
    for field in dataclasses.fields(TrainConfig):
        flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        target = optimizers if field.metadata.get("optimizer_option") else group
        help_text = _help(field)
        if field.name.endswith("_options"):
            target.add_argument(
                flag.removesuffix("s"),
                dest=field.name,
                action="append",
                metavar="KEY=VALUE",
                default=argparse.SUPPRESS,
                help=f"{help_text}: one KEY=VALUE per flag (repeatable; VALUE read as YAML)",
            )
        elif _base(kind) is bool:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(kind) is tuple:
            target.add_argument(
                flag, nargs="+", type=float, default=argparse.SUPPRESS, metavar="FRACTION", help=help_text
            )
        else:
            choices = _choices(field.name)
            target.add_argument(
                flag,
                dest=field.name,
                type=_parser_for(kind, field.name),
                choices=choices,
                default=argparse.SUPPRESS,
                metavar=None if choices is None else "{" + ",".join(map(str, choices)) + "}",
                help=help_text,
            )


def _path(text: str) -> Path:
    """argparse ``type=`` for a file or folder: a non-empty path (``Path("")`` would silently mean the current
    folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a file or folder, got an empty path")
    return Path(text).expanduser()


def _choices(name: str) -> tuple[Any, ...] | None:
    """The registered values of a named field (datasets, models, optimizers, schedules, orientations)."""
    named = {"dataset": DATASETS, "model": MODELS, "optimizer": OPTIMIZER_NAMES, "schedule": SCHEDULES}
    named["rho_schedule"] = RHO_SCHEDULES
    named["perturbation_sync"] = PERTURBATION_SYNCS
    return named.get(name, option_choices(name))


def _help(field: dataclasses.Field) -> str:
    """A field's help: its own, or for an optimizer option the registry's doc and which optimizers take it."""
    if not field.metadata.get("optimizer_option"):
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        shown = "none" if default is None else default
        return f"{field.metadata['help']} (default: {shown})"
    takers: dict[str, list[str]] = {}  # one doc → the optimizers whose entry says it
    for entry in OPTIMIZERS.values():
        for option in entry.options:
            if option.name == field.name:
                takers.setdefault(option.doc, []).append(entry.title)
    return "; ".join(f"{doc} ({', '.join(titles)})" for doc, titles in takers.items())


def _parser_for(kind: Any, name: str) -> Any:
    """argparse ``type=`` for a field annotated ``int``, ``float``, ``str`` or ``X | None`` (``none`` → None)."""
    base = _base(kind)

    def parse(text: str) -> Any:
        if _is_optional(kind) and text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a {base.__name__}, got {text!r}") from None

    return parse


def _base(kind: Any) -> Any:
    """``X`` for an annotation ``X | None``, else the annotation itself."""
    return next(k for k in typing.get_args(kind) if k is not type(None)) if _is_optional(kind) else kind


def _is_optional(kind: Any) -> bool:
    return isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the ``--config`` file, then the flags given on the command line; the dataset and model names
    and their options are checked against the registries here, before any data is loaded."""
    config = TrainConfig.from_dict(given_options(args))
    check_options(f"dataset {config.dataset!r}", config.dataset_options, dataset_options(config.dataset))
    check_options(f"model {config.model!r}", config.model_options, model_options(config.model))
    return config


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config options the command line gives: the ``--config`` file's (all of them), then the flags (a
    ``--dataset-option``/``--model-option`` adds to the file's mapping).

    Raises:
        ValueError: naming ``--config`` and the file when it cannot be read as a config, or the flag of a
            malformed KEY=VALUE.
    """
    values: dict[str, Any] = {}
    if args.config:
        try:
            values = TrainConfig.load(args.config).to_dict()
        except ValueError as error:
            raise ValueError(f"--config: {error}") from None
    field_names = {field.name for field in dataclasses.fields(TrainConfig)}
    for name, value in vars(args).items():
        if name not in field_names:
            continue
        if name.endswith("_options"):
            values[name] = {**values.get(name, {}), **_key_values(value, name.removesuffix("s"))}
        else:
            values[name] = value
    return values


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    parsed = {}
    option = f"--{flag.replace('_', '-')}"
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{option} {pair!r}: VALUE is not valid YAML ({error})") from None
    return parsed


def _train_command(args: argparse.Namespace) -> int:
    from workbench.distributed.context import launched_rank
    from workbench.distributed.launch import launch_training, without_launcher_flag
    from workbench.runs import resume_run, train_run

    if args.nproc_per_node is not None:
        if not args.resume:
            config_from_args(args)  # bad options fail here, before any process starts
        return launch_training(args.nproc_per_node, without_launcher_flag(args.argv[args.argv.index("train") + 1 :]))
    if args.resume:
        if args.run_dir.exists():
            check_writable_folder("--run-dir", args.run_dir)
        result = resume_run(
            args.run_dir, options=given_options(args), progress=not args.no_progress, data_dir=args.data_dir
        )
    else:
        config = config_from_args(args)
        check_writable_folder("--run-dir", args.run_dir)
        result = train_run(
            config, args.run_dir, progress=not args.no_progress, data_dir=args.data_dir, overwrite=args.overwrite
        )
    if launched_rank() != 0:  # a process of a distributed run other than rank 0: rank 0 reports
        return 0 if result.status != "diverged" else 1
    report = RunFolder(args.run_dir).report
    written = f"report: {report}" if report.is_file() else f"run folder: {args.run_dir}"
    print(f"{result.status}: {result.reason}; {written}")
    return 0 if result.status != "diverged" else 1


def _report_command(args: argparse.Namespace) -> int:
    from workbench.viz import load_runs, write_report

    _check_report_output(args.output, args.run_dirs)
    path = write_report(load_runs(args.run_dirs), args.output, title=args.title)
    print(f"report: {path}")
    return 0


def _check_report_output(output: Path, run_dirs: Sequence[Path]) -> None:
    """``--output`` must be a file this command may create or replace: not a folder, not a run folder's own file."""
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; give the HTML file to write, e.g. {output / 'compare.html'}")
    folder = RunFolder(output.parent)
    if output.name in RUN_FILES and (folder.has_history() or folder.has_checkpoint() or folder.config.is_file()):
        raise ValueError(
            f"--output {output} is the run folder {folder.path}'s own {output.name}; write the report elsewhere"
        )
    check_writable_folder("--output's folder", output.parent)


def _demo_command(args: argparse.Namespace) -> int:
    from workbench.runs import run_demo

    check_writable_folder("--output", args.output)
    report = run_demo(
        args.output, quick=args.quick, progress=not args.no_progress, data_dir=args.data_dir, overwrite=args.overwrite
    )
    print(f"report: {report}")
    return 0


def _batch_run_command(args: argparse.Namespace) -> int:
    from workbench.batch import load_grid, run_batch
    from workbench.batch.records import UNREADABLE, run_state, unreadable_reason

    grid = load_grid(args.grid, preview=args.preview)
    output = args.output or Path("runs") / (args.grid.stem + ("-preview" if args.preview else ""))
    if args.dry_run:
        if output.exists() and not output.is_dir():
            raise ValueError(f"--output {output} is a file, not a batch folder")
        for run in grid.runs:
            state = run_state(output / run.name)
            reason = f"  ({unreadable_reason(output / run.name)}; it will run again)" if state == UNREADABLE else ""
            print(f"{state:10s} {run.name}{reason}")
        print(f"{len(grid.runs)} runs of {grid.notebook.name} into {output}")
        return 0
    check_writable_folder("--output", output)
    summary = run_batch(
        grid,
        output,
        workers=args.workers,
        scheduler=args.scheduler,
        kernel_name=args.kernel,
        threads_per_run=args.threads_per_run,
        progress=not args.no_progress,
        data_dir=args.data_dir,
    )
    print(summary.describe())
    print(f"collect: workbench batch collect {output}")
    return 0 if summary.ok else 1


def _batch_collect_command(args: argparse.Namespace) -> int:
    from workbench.batch import collect

    if not args.output.is_dir():
        raise ValueError(f"{args.output} is not a batch folder (written by `workbench batch run`)")
    collection = collect(args.output, title=args.title, reference=args.reference)
    print(collection.files["summary.md"].read_text(), end="")
    if "comparison.md" in collection.files:
        print(f"\npaired by seed, against {args.reference}:")
        print(collection.files["comparison.md"].read_text(), end="")
    print(f"report: {collection.files['report.html']}")
    for problem in collection.problems:
        print(f"workbench batch collect: error: {problem}", file=sys.stderr)
    if collection.problems:
        print(
            f"workbench batch collect: {len(collection.problems)} run(s) could not be read (above); the tables hold "
            "the others",
            file=sys.stderr,
        )
        return USAGE_ERROR
    return 0


LISTS = ("optimizers", "datasets", "models")


def _list_command(args: argparse.Namespace) -> int:
    print("\n\n".join(f"{what}:\n{_listing(what)}" for what in ((args.what,) if args.what else LISTS)))
    return 0


def _listing(what: str) -> str:
    """The text ``workbench list WHAT`` prints: one block per registered name, its options with defaults."""
    lines = []
    if what == "optimizers":
        for name, entry in OPTIMIZERS.items():
            lines.append(f"  {name:10s} {entry.title}: {entry.summary}")
            defaults = entry.defaults()
            for option in entry.options:
                flag = "--" + option.name.replace("_", "-")
                lines.append(f"      {flag} (default {json.dumps(defaults[option.name])}): {option.doc}")
        return "\n".join(lines)
    names, summary, options = (
        (DATASETS, dataset_summary, dataset_options) if what == "datasets" else (MODELS, model_summary, model_options)
    )
    flag = "--dataset-option" if what == "datasets" else "--model-option"
    for name in names:
        lines.append(f"  {name:10s} {summary(name).replace('``', '')}")
        lines += [f"      {flag} {option}={json.dumps(default)}" for option, default in options(name).items()]
    return "\n".join(lines)


def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    """``workbench data list [NAME ...]`` and ``workbench data prepare NAME``, both with ``--data-dir``."""
    data = commands.add_parser("data", help="the datasets on disk under the data root: list them, prepare one")
    actions = data.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each dataset: whether it is present, its size and path")
    listing.add_argument(
        "names", nargs="*", metavar="NAME", help=f"datasets to show (default: all of {', '.join(DATASETS)})"
    )
    listing.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
    listing.set_defaults(handler=_data_list_command)
    prepare = actions.add_parser(
        "prepare", help="generate (MNIST-1D) or download (CIFAR) a dataset into the data root; offline, say how"
    )
    prepare.add_argument("name", metavar="NAME", help=f"the dataset ({', '.join(DATASETS)})")
    prepare.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
    prepare.set_defaults(handler=_data_prepare_command)


def _data_list_command(args: argparse.Namespace) -> int:
    from workbench.datasets import dataset_status, resolve_data_root
    from workbench.datasets.storage import format_size

    root = resolve_data_root(args.data_dir)
    statuses = [dataset_status(name, root.path) for name in (args.names or DATASETS)]
    created = "" if root.path.exists() else "; not created yet"
    print(f"data root: {root.path} (from {root.origin}{created})")
    rows = [("dataset", "origin", "state", "size", "path")]
    for status in statuses:
        size = format_size(status.size_bytes) if status.size_bytes else "-"
        rows.append((status.name, status.origin, status.state, size, "-" if status.path is None else str(status.path)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]  # the path, last, is not padded
    for row in rows:
        print(*(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)), row[4], sep="  ")
    for status in statuses:
        if not status.present:
            print(f"{status.name}: {status.detail}; `workbench data prepare {status.name}` (offline: data/README.md)")
    return 0


def _data_prepare_command(args: argparse.Namespace) -> int:
    from workbench.datasets import prepare_dataset
    from workbench.datasets.storage import format_size

    try:
        status = prepare_dataset(args.name, args.data_dir)
    except (ImportError, OSError) as error:  # no torchvision, no network: the message says which file goes where
        print(f"workbench data: error: {error}", file=sys.stderr)
        return 1
    if status.path is None:
        print(f"{status.name}: {status.detail}")
    else:
        print(f"{status.name}: {status.state}, {format_size(status.size_bytes)} at {status.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
