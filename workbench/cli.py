"""The ``workbench`` command: ``train``, ``report``, ``demo`` (the README's main job) and ``batch run|collect``.

Bad options exit with status 2 and a message naming the option and its allowed values.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench.train import TrainConfig
from workbench.viz import load_runs, write_report

USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted; what was computed so far is on disk", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="SAM geometry workbench")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one model; writes a run directory with a report")
    train.add_argument("--config", type=Path, help="JSON or YAML file of TrainConfig options (flags override it)")
    train.add_argument("--run-dir", type=Path, default=Path("runs/train"), help="output directory (default runs/train)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(train)
    train.set_defaults(handler=_train_command)

    report = commands.add_parser("report", help="build an HTML report comparing run directories")
    report.add_argument("run_dirs", nargs="+", type=Path, help="run directories (each with history.csv)")
    report.add_argument("--output", type=Path, default=Path("report.html"), help="HTML file (default report.html)")
    report.add_argument("--title", default="Run comparison", help="report title")
    report.set_defaults(handler=_report_command)

    demo = commands.add_parser(
        "demo", help="main job: SGD, SAM, Eigen-SAM and X-SAM on MNIST-1D, same seed and budget, one report"
    )
    demo.add_argument("--output", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)")
    demo.add_argument("--quick", action="store_true", help="a much shorter run (seconds), for smoke tests")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(handler=_demo_command)
    _add_batch_commands(commands)
    return parser


def _add_batch_commands(commands: argparse._SubParsersAction) -> None:
    """``workbench batch run GRID.yaml`` and ``workbench batch collect DIR`` (two words: a grid file may be named
    anything, "collect" included)."""
    batch = commands.add_parser("batch", help="run a notebook over a grid of parameters (papermill), then collect")
    actions = batch.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run", help="execute a grid file's runs in parallel; finished runs are skipped, failed and interrupted re-run"
    )
    run.add_argument("grid", type=Path, help="grid file (YAML; schema in workbench/batch/grid.py and docs)")
    run.add_argument("--output", type=Path, help="batch folder (default runs/<grid file name>)")
    run.add_argument("--workers", type=int, help="runs at once (default: the number of CPU cores)")
    run.add_argument("--threads-per-run", type=int, default=1, help="OMP_NUM_THREADS of each run's kernel (default 1)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default python3)")
    run.add_argument("--dry-run", action="store_true", help="list the runs and their state; execute nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_batch_run_command)
    collect = actions.add_parser(
        "collect", help="gather a batch folder into results.parquet/.csv, summary.md and report.html"
    )
    collect.add_argument("output", type=Path, help="batch folder (written by `workbench batch run`)")
    collect.add_argument("--title", help="report title (default: Batch <folder name>)")
    collect.set_defaults(handler=_batch_collect_command)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--probe-every 50``, ``--amp/--no-amp``, ``--dataset-option k=v``)."""
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if field.name.endswith("_options"):
            parser.add_argument(
                flag.removesuffix("s"),
                dest=field.name,
                action="append",
                metavar="KEY=VALUE",
                default=argparse.SUPPRESS,
                help=f"one {field.name.removesuffix('_options')} option (repeatable); VALUE is read as YAML",
            )
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, nargs="+", type=float, default=argparse.SUPPRESS, metavar="FRACTION")
        else:
            parser.add_argument(flag, type=_parser_for(kind, field.name), default=argparse.SUPPRESS)


def _parser_for(kind: Any, name: str) -> Any:
    """argparse ``type=`` for a field annotated ``int``, ``float``, ``str`` or ``X | None`` (``none`` → None)."""
    options = [k for k in typing.get_args(kind) if k is not type(None)] if _is_optional(kind) else [kind]
    base = options[0]

    def parse(text: str) -> Any:
        if _is_optional(kind) and text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a {base.__name__}, got {text!r}") from None

    return parse


def _is_optional(kind: Any) -> bool:
    return isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the ``--config`` file, then the flags given on the command line."""
    values: dict[str, Any] = TrainConfig.load(args.config).to_dict() if args.config else {}
    field_names = {field.name for field in dataclasses.fields(TrainConfig)}
    for name, value in vars(args).items():
        if name not in field_names:
            continue
        if name.endswith("_options"):
            values[name] = {**values.get(name, {}), **_key_values(value, name.removesuffix("s"))}
        else:
            values[name] = value
    return TrainConfig.from_dict(values)


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    parsed = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--{flag.replace('_', '-')} takes KEY=VALUE, got {pair!r}")
        parsed[key] = yaml.safe_load(text)
    return parsed


def _train_command(args: argparse.Namespace) -> int:
    from workbench.runs import train_run

    config = config_from_args(args)
    result = train_run(config, args.run_dir, progress=not args.no_progress)
    print(f"{result.status}: {result.reason}; report: {args.run_dir / 'report.html'}")
    return 0 if result.status != "diverged" else 1


def _report_command(args: argparse.Namespace) -> int:
    path = write_report(load_runs(args.run_dirs), args.output, title=args.title)
    print(f"report: {path}")
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from workbench.runs import run_demo

    report = run_demo(args.output, quick=args.quick, progress=not args.no_progress)
    print(f"report: {report}")
    return 0


def _batch_run_command(args: argparse.Namespace) -> int:
    from workbench.batch import load_grid, run_batch
    from workbench.batch.records import run_state

    grid = load_grid(args.grid)
    output = args.output or Path("runs") / args.grid.stem
    if args.dry_run:
        for run in grid.runs:
            print(f"{run_state(output / run.name):10s} {run.name}")
        print(f"{len(grid.runs)} runs of {grid.notebook.name} into {output}")
        return 0
    summary = run_batch(
        grid,
        output,
        workers=args.workers,
        kernel_name=args.kernel,
        threads_per_run=args.threads_per_run,
        progress=not args.no_progress,
    )
    print(summary.describe())
    print(f"collect: workbench batch collect {output}")
    return 0 if summary.ok else 1


def _batch_collect_command(args: argparse.Namespace) -> int:
    from workbench.batch import collect

    collection = collect(args.output, title=args.title)
    print(collection.files["summary.md"].read_text(), end="")
    print(f"report: {collection.files['report.html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
