"""The ``workbench`` command: train, report and the demo, and exit status 2 on bad options."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from workbench.cli import _build_parser as build_parser
from workbench.cli import config_from_args, main
from workbench.datasets import DATASETS
from workbench.models import MODELS
from workbench.optim import OPTIMIZER_NAMES, OPTIMIZERS

TOY = ["--dataset", "moons", "--dataset-option", "num_samples=300", "--model", "mlp", "--batch-size", "32"]


def test_train_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    status = main(["train", *TOY, "--optimizer", "sam", "--steps", "12", "--probe-every", "6", "--trace-samples", "6",
                   "--run-dir", str(run_dir), "--no-progress"])  # fmt: skip
    assert status == 0
    for name in ("config.json", "history.csv", "checkpoint.pt", "summary.json", "report.html"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"] == "sam" and config["dataset_options"] == {"num_samples": 300}
    history = pd.read_csv(run_dir / "history.csv")
    assert set(history[history.metric == "lambda_1"].step) == {0, 6}
    assert "plotly" in (run_dir / "report.html").read_text()


def test_flags_override_the_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("optimizer: xsam\nalpha: 1.0\nlr: 0.2\n")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml"), "--lr", "0.3", "--amp", "bf16"])
    config = config_from_args(args)
    assert (config.optimizer, config.alpha, config.lr, config.amp) == ("xsam", 1.0, 0.3, "bf16")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "-1"], "lr must be in"),
        (["--probe-every", "0"], "probe_every must be an integer >= 1"),
        (["--dataset-option", "noise"], "takes KEY=VALUE"),
        (["--alpha", "0.2"], "optimizer 'sgd' takes no alpha (it takes: none of them)"),
    ],
)
def test_bad_options_exit_with_status_2_and_name_the_option(tmp_path, capsys, flags, message):
    status = main(["train", *TOY, *flags, "--steps", "2", "--run-dir", str(tmp_path / "r"), "--no-progress"])
    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "fast"], "lr must be a float"),
        (["--optimizer", "adam"], r"argument --optimizer: invalid choice: 'adam' \(choose from '?sgd'?, '?sam'?"),
        (["--dataset", "imagenet"], r"argument --dataset: invalid choice: 'imagenet' \(choose from '?moons"),
        (["--model", "vit"], "argument --model: invalid choice: 'vit'"),
        (["--orientation", "up"], r"invalid choice: 'up' \(choose from '?as_computed'?, '?along_gradient"),
        (["--schedule", "linear"], r"invalid choice: 'linear' \(choose from '?constant'?, '?cosine'?, '?step"),
    ],
)
def test_unparseable_values_and_unknown_names_exit_with_status_2(capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *flags])
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_help_explains_every_flag_and_lists_the_registered_names(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name in (*OPTIMIZER_NAMES, *DATASETS, *MODELS, "along_adversarial", "rho_schedule".replace("_", "-")):
        assert name in text, name
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    undocumented = [action.dest for action in commands.choices["train"]._actions if not action.help]
    assert undocumented == [], undocumented


def test_list_prints_every_registered_name_with_its_options_and_defaults(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name, entry in OPTIMIZERS.items():
        assert f"  {name} " in text and entry.title in text
        for option, default in entry.defaults().items():
            assert f"--{option.replace('_', '-')} (default {json.dumps(default)})" in text
    for name in DATASETS:
        assert f"  {name} " in text
    assert "--dataset-option num_samples=5000" in text and "--model-option width=64" in text
    assert main(["list", "models"]) == 0
    only_models = capsys.readouterr().out
    assert only_models.startswith("models:") and "optimizers:" not in only_models


def test_python_dash_m_workbench_runs_the_same_command_line():
    completed = subprocess.run(
        [sys.executable, "-m", "workbench", "list", "optimizers"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0 and "Eigen-SAM" in completed.stdout


def test_report_compares_run_directories(tmp_path):
    for name in ("a", "b"):
        assert main(["train", *TOY, "--steps", "4", "--probe-every", "none", "--run-dir", str(tmp_path / name),
                     "--no-progress"]) == 0  # fmt: skip
    output = tmp_path / "compare.html"
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(output)]) == 0
    written = {path for path in tmp_path.rglob("*") if before.get(path) != path.stat().st_mtime_ns}
    assert written == {output}  # the one file --help names, nothing beside it
    text = output.read_text()
    assert "<td>a</td>" in text and "<td>b</td>" in text
    assert main(["report", str(tmp_path / "missing"), "--output", str(output)]) == 2


def test_demo_quick_runs_the_four_optimizers_as_a_console_script(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "demo", "--quick", "--no-progress", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "report.html").is_file()
    for name in ("sgd", "sam", "eigensam", "xsam"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["final"]["test_accuracy"] > 0, name
