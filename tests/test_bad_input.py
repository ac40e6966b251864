"""Every bad input found by probing the workbench as a hostile but fair new user (issue 12), one row each.

Command-line rows: the command exits with status 2 and a message naming the option or the file, without a
traceback and before any data is loaded (the dataset loaders are replaced by ones that fail the test).
Library rows: the call raises with a message that says what is wrong. The batch rows: one damaged run file
does not block the batch, and the message names the file.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.batch.records import run_metrics
from workbench.cli import main
from workbench.curvature import HessianOperator, hessian_trace, spectral_density, top_eigenpairs
from workbench.datasets import load_dataset
from workbench.datasets import registry as dataset_registry
from workbench.jsonfiles import read_json, write_json
from workbench.live import LiveRun
from workbench.models import build_model
from workbench.optim import XSAM, EigenSAM
from workbench.optim.sam import SAM
from workbench.train import TrainConfig, Trainer
from workbench.train.checkpoint import read_checkpoint, write_checkpoint
from workbench.train.history import History
from workbench.train.run_folder import LOCK_FILE, RunFolder

REPO = Path(__file__).resolve().parents[1]
TOY = ["--dataset", "moons", "--dataset-option", "num_samples=300", "--model", "mlp", "--batch-size", "32"]
FAST = [*TOY, "--steps", "4", "--probe-every", "none", "--no-progress"]
UNWRITABLE = "/proc/workbench-cannot-write-here/run"  # the kernel refuses new entries in /proc, even to root


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished run folder (loaded data once, before the loaders are replaced)."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *FAST, "--lr", "0.1", "--run-dir", str(folder)]) == 0
    return folder


@pytest.fixture
def no_data(monkeypatch):
    """Make loading any dataset fail the test: the rows must be refused before."""

    def refusing(loader: Callable) -> Callable:
        @functools.wraps(loader)  # the same signature: the options are still checked against it
        def refuse(*args, **kwargs):
            raise AssertionError("data was loaded before the bad input was refused")

        return refuse

    for name in dataset_registry.DATASETS:
        monkeypatch.setitem(dataset_registry._LOADERS, name, refusing(dataset_registry._LOADERS[name]))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copy_of(run: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(run, tmp / "copy"))


def corrupt(path: Path) -> Path:
    """Zero 8 bytes in the middle of a file (the issue's reproduction)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(8)
    path.write_bytes(bytes(data))
    return path


class Evil:
    """Pickles into a call that creates a marker file: loading it must not run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def crafted(run: Path, tmp: Path) -> Path:
    folder = copy_of(run, tmp)
    torch.save({"config": {}, "model": Evil(tmp / "code-ran")}, folder / "checkpoint.pt")
    return folder


def grid(tmp: Path) -> Path:
    notebook = REPO / "notebooks" / "05_reproduce_papers.ipynb"
    return write(tmp / "g.yaml", f"notebook: {notebook}\nbase: {{steps: 2}}\ngrid:\n  seed: [0]\n")


@dataclass(frozen=True)
class Row:
    """A command line (built in a fresh tmp folder, with a finished run at hand) and the message it must print."""

    name: str
    argv: Callable[[Path, Path], list[str]]
    message: str


# fmt: off
ROWS = [
    # --config
    Row("config file missing", lambda t, r: ["train", *FAST, "--config", str(t / "none.yaml")],
        r"--config: config file \S*none.yaml does not exist"),
    Row("config is a folder", lambda t, r: ["train", *FAST, "--config", str(t)], r"config file \S+ is not a file"),
    Row("config malformed YAML", lambda t, r: ["train", *FAST, "--config", str(write(t / "c.yaml", "a: [\n"))],
        r"config file \S*c.yaml: not valid YAML"),
    Row("config YAML tag", lambda t, r: ["train", *FAST, "--config",
                                         str(write(t / "c.yaml", "lr: !!python/name:os.system\n"))],
        r"c.yaml: not valid YAML: could not determine a constructor"),
    Row("config malformed JSON", lambda t, r: ["train", *FAST, "--config", str(write(t / "c.json", "{"))],
        r"c.json: not valid JSON"),
    Row("config file empty", lambda t, r: ["train", *FAST, "--config", str(write(t / "c.yaml", "\n"))],
        r"config file \S*c.yaml is empty"),
    Row("config lr_milestones a number", lambda t, r: ["train", *FAST, "--config",
                                                       str(write(t / "c.yaml", "lr_milestones: 0.5\n"))],
        r"c.yaml: lr_milestones must be a list of fractions"),
    Row("config unknown option", lambda t, r: ["train", *FAST, "--config",
                                               str(write(t / "c.yaml", "learning_rate: 0.1\n"))],
        r"unknown config option\(s\) learning_rate"),
    Row("config unknown dataset", lambda t, r: ["train", "--config", str(write(t / "c.yaml", "dataset: imagenet\n"))],
        r"dataset must be one of 'moons'"),
    Row("config unknown model", lambda t, r: ["train", "--config", str(write(t / "c.yaml", "model: vit\n"))],
        r"model must be one of 'mlp'"),
    Row("unknown dataset option", lambda t, r: ["train", *FAST, "--dataset-option", "noise_level=1"],
        r"dataset 'moons' got unknown option\(s\) 'noise_level'"),
    Row("option value not YAML", lambda t, r: ["train", *FAST, "--model-option", "hidden_sizes=[1,"],
        r"--model-option 'hidden_sizes=\[1,': VALUE is not valid YAML"),
    # --run-dir
    Row("run dir empty", lambda t, r: ["train", *FAST, "--run-dir", ""], r"argument --run-dir: must name"),
    Row("run dir is a file", lambda t, r: ["train", *FAST, "--run-dir", str(write(t / "f", "x"))],
        r"--run-dir \S+ is a file, not a folder"),
    Row("run dir inside a file", lambda t, r: ["train", *FAST, "--run-dir", str(write(t / "f", "x") / "run")],
        r"--run-dir \S+ cannot be created or written"),
    Row("run dir unwritable", lambda t, r: ["train", *FAST, "--run-dir", UNWRITABLE],
        r"--run-dir \S+ cannot be created or written"),
    Row("run dir holds a run", lambda t, r: ["train", *FAST, "--run-dir", str(r)],
        r"run folder \S+ already holds a run \(checkpoint.pt, config.json.*\): continue it .* --resume, or .* "
        r"--overwrite"),
    Row("run dir holds other files", lambda t, r: ["train", *FAST, "--overwrite", "--run-dir",
                                                   str(write(t / "mine" / "notes.txt", "x").parent)],
        r"holds files that are not a run's \(notes.txt\)"),
    Row("resume and overwrite", lambda t, r: ["train", *FAST, "--resume", "--overwrite"],
        r"argument --overwrite: not allowed with argument --resume"),
    Row("resume a missing folder", lambda t, r: ["train", "--resume", "--run-dir", str(t / "none")],
        r"run folder \S*none does not exist: there is no run to resume"),
    Row("resume without a checkpoint", lambda t, r: ["train", "--resume", "--run-dir",
                                                     str(write(t / "run" / "history.csv", "").parent)],
        r"run folder \S*run has no checkpoint.pt to resume from"),
    Row("resume with another config", lambda t, r: ["train", *FAST, "--lr", "0.2", "--resume", "--run-dir", str(r)],
        r"these options differ from it: lr is 0.1 in the run, 0.2 here"),
    Row("resume a corrupted checkpoint", lambda t, r: ["train", "--resume", "--run-dir",
                                                       str(corrupt(copy_of(r, t) / "checkpoint.pt").parent)],
        r"checkpoint \S*copy/checkpoint.pt (is corrupted|cannot be read safely)"),
    Row("resume a crafted checkpoint", lambda t, r: ["train", "--resume", "--run-dir", str(crafted(r, t))],
        r"checkpoint \S*checkpoint.pt cannot be read safely .*Unsupported global"),
    # report
    Row("report over a run's own file", lambda t, r: ["report", str(r), "--output", str(r / "report.html")],
        r"--output \S*report.html is the run folder \S+'s own report.html"),
    Row("report output a folder", lambda t, r: ["report", str(r), "--output", str(t)], r"--output \S+ is a folder"),
    Row("report of a missing run", lambda t, r: ["report", str(t / "none"), "--output", str(t / "x.html")],
        r"\S*none is not a run folder: it has no history.csv"),
    # demo
    Row("demo over an earlier demo", lambda t, r: ["demo", "--quick", "--no-progress", "--output",
                                                   str(write(t / "demo" / "sam" / "config.json", "{}").parents[1])],
        r"run folder \S*demo/sam already holds a run \(config.json\)"),
    Row("demo output a file", lambda t, r: ["demo", "--quick", "--output", str(write(t / "f", "x"))],
        r"--output \S+ is a file"),
    # batch
    Row("batch output a file", lambda t, r: ["batch", "run", str(grid(t)), "--output", str(write(t / "f", "x"))],
        r"--output \S+ is a file, not a folder"),
    Row("batch output unwritable", lambda t, r: ["batch", "run", str(grid(t)), "--output", UNWRITABLE],
        r"--output \S+ cannot be created or written"),
    Row("batch dry run output a file", lambda t, r: ["batch", "run", str(grid(t)), "--dry-run", "--output",
                                                     str(write(t / "f", "x"))], r"--output \S+ is a file"),
    Row("collect a file", lambda t, r: ["batch", "collect", str(write(t / "f", "x"))], r"\S+ is not a batch folder"),
]
# fmt: on


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_command_lines_exit_2_naming_the_option_or_file(row, finished_run, no_data, tmp_path, capsys):
    argv = row.argv(tmp_path, finished_run)
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own refusals
        status = exit_info.code
    error = capsys.readouterr().err
    assert status == 2, error
    assert re.search(row.message, error), error
    assert "Traceback" not in error and not (tmp_path / "code-ran").exists()


def test_a_run_folder_held_by_another_process_is_refused(finished_run, no_data, tmp_path, capsys):
    folder = copy_of(finished_run, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "f.truncate(0); f.write('process 4242'); f.flush(); print('held', flush=True); time.sleep(60)",
         str(folder / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        for argv in (["train", *FAST, "--overwrite"], ["train", "--resume"]):
            assert main([*argv, "--run-dir", str(folder)]) == 2
            assert f"run folder {folder} is in use by process 4242" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert read_json(folder / "summary.json")["status"] == "finished"  # untouched


# -- one damaged file does not block a batch ---------------------------------------------------------------------


def fake_batch_run(output: Path, index: int, *, diverged: bool = False) -> Path:
    """A run folder as `workbench batch run` leaves a finished run: params.json, history.csv, result.json."""
    name = f"sgd_seed={index}_0000000{index}"
    folder = output / name
    rows = [(0, 0.0, "test_accuracy", 0.1), (0, 0.0, "train_eval_loss", 2.3), (0, 0.0, "train_loss", 2.3)]
    evaluation = [(4, 0.4, "test_accuracy", 0.8 + index / 100), (4, 0.4, "train_eval_loss", 0.5)]
    rows += [(1, 0.1, "train_loss", math.nan)] if diverged else evaluation
    folder.mkdir(parents=True)
    History(rows).save(folder / "history.csv")
    params = {"name": name, "variant": "sgd", "axes": {"seed": index}, "options": {"seed": index}, "group": "sgd",
              "index": index, "notebook": "05_reproduce_papers.ipynb", "grid": None, "description": "fake"}  # fmt: skip
    write_json(folder / "params.json", params)
    result = {"status": "finished", "train_status": "diverged" if diverged else "finished", "seconds": 1.0,
              "train_seconds": 0.5, "config": TrainConfig(seed=index).to_dict(),
              "metrics": run_metrics(History(rows).to_frame())}  # fmt: skip
    write_json(folder / "result.json", result)
    return folder


# fmt: off
DAMAGES = {
    "a finished run lost history.csv": (lambda folder: (folder / "history.csv").unlink(), r"has no history.csv"),
    "params.json is {}": (lambda folder: write(folder / "params.json", "{}"),
                          r"params.json is not a batch run's parameters: it lacks group, index, name"),
    "params.json is not JSON": (lambda folder: write(folder / "params.json", "{\"name\": "),
                                r"params.json is not a readable JSON file"),
    "result.json is not JSON": (lambda folder: write(folder / "result.json", "{\"status\""),
                                r"result.json is not a readable JSON file"),
}
# fmt: on


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_one_damaged_run_file_does_not_block_collect_or_the_dry_run(damage, tmp_path, capsys):
    output = tmp_path / "batch"
    good = [fake_batch_run(output, index) for index in (0, 1)]
    broken = fake_batch_run(output, 2)
    spoil, message = DAMAGES[damage]
    spoil(broken)
    assert main(["batch", "collect", str(output)]) == 2
    error = capsys.readouterr().err
    assert re.search(rf"{broken.name}: \S*{broken.name}/\S* ?{message}|{message}", error), error
    assert str(broken) in error and "Traceback" not in error
    table = pd.read_csv(output / "results.csv")
    assert set(table[table.state == "finished"].run) == {folder.name for folder in good}
    assert table[table.run == broken.name].state.tolist() == ["unreadable"]
    assert "| sgd | 2 |" in (output / "summary.md").read_text()

    write(tmp_path / "g.yaml", f"notebook: {REPO / 'notebooks' / '05_reproduce_papers.ipynb'}\nbase: {{steps: 2}}\n"
          "grid:\n  seed: [0, 1, 2]\n")  # fmt: skip
    assert main(["batch", "run", str(tmp_path / "g.yaml"), "--output", str(output), "--dry-run"]) == 0


def test_the_dry_run_names_a_damaged_result_and_runs_it_again(tmp_path, capsys):
    from workbench.batch import load_grid

    path = write(tmp_path / "g.yaml", f"notebook: {REPO / 'notebooks' / '05_reproduce_papers.ipynb'}\n"
                 "base: {steps: 2}\ngrid:\n  seed: [0]\n")  # fmt: skip
    run = load_grid(path).runs[0]
    write(tmp_path / "out" / run.name / "result.json", "{")
    assert main(["batch", "run", str(path), "--output", str(tmp_path / "out"), "--dry-run"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("unreadable") and "result.json is not a readable JSON file" in line and "run again" in line


# -- library rows ----------------------------------------------------------------------------------------------------


def nan_problem() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    good = (torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,)))
    bad = (torch.full((8, 3), math.nan, dtype=torch.float64), torch.randint(0, 2, (8,)))
    return model, good, bad


def nan_weights() -> None:
    model, good, _ = nan_problem()
    with torch.no_grad():
        model[0].weight.fill_(math.nan)
    HessianOperator(model, F.cross_entropy, good)


def nan_later_batch(estimate: Callable) -> Callable[[], None]:
    def call() -> None:
        model, good, bad = nan_problem()
        estimate(HessianOperator(model, F.cross_entropy, [good, bad], hvp="func"))

    return call


def sam_family_swap() -> None:
    model = nn.Linear(3, 2)
    saved = XSAM(model.parameters(), lr=0.1, freq=2, model=model).state_dict()
    EigenSAM(model.parameters(), lr=0.1, freq=2, model=model).load_state_dict(saved)


def state_dict_mid_step() -> None:
    model = nn.Linear(3, 2)
    optimizer = SAM(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.first_step()
    optimizer.state_dict()


def trainer_and_state(tmp_path: Path) -> tuple[Trainer, dict]:
    config = TrainConfig(dataset="moons", dataset_options={"num_samples": 200}, model="mlp", steps=2,
                         probe_every=None, batch_size=32)  # fmt: skip
    trainer = Trainer(config)
    return trainer, trainer.state_dict()


def written_by(changes: dict) -> Callable[[Path], None]:
    def call(tmp_path: Path) -> None:
        trainer, state = trainer_and_state(tmp_path)
        write_checkpoint(tmp_path / "checkpoint.pt", {**state, "writer": {**state["writer"], **changes}})
        Trainer.from_checkpoint(tmp_path / "checkpoint.pt", data=trainer.data)

    return call


def make_run(tmp_path: Path) -> Path:
    trainer, _ = trainer_and_state(tmp_path)
    trainer.save_to(RunFolder(tmp_path / "saved"))
    return tmp_path / "saved"


def checkpoint_of_a_number(tmp_path: Path) -> None:
    torch.save({"model": torch.zeros(2)}, tmp_path / "old.pt")  # no checksum record: not written by workbench
    read_checkpoint(tmp_path / "old.pt")


# fmt: off
LIBRARY_ROWS = {
    "NaN weights: the operator": (lambda t: nan_weights(), ValueError, r"the loss is not finite \(nan\) on batch 0"),
    "NaN loss: top_eigenpairs": (lambda t: nan_later_batch(top_eigenpairs)(), ValueError, r"the loss is not finite"),
    "NaN loss: spectral_density": (lambda t: nan_later_batch(lambda op: spectral_density(op, lanczos_steps=4))(),
                                   ValueError, r"the loss is not finite"),
    "NaN loss: hessian_trace": (lambda t: nan_later_batch(hessian_trace)(), ValueError, r"the loss is not finite"),
    "NaN loss, graph engine": (lambda t: top_eigenpairs(HessianOperator(nan_problem()[0], F.cross_entropy,
                                                                        list(nan_problem()[1:]))),
                               ValueError, r"the loss is not finite \(nan\) on batch 1"),
    "X-SAM state into Eigen-SAM": (lambda t: sam_family_swap(), ValueError,
                                   r"saved by optimizer class XSAM and cannot be loaded into EigenSAM"),
    "state_dict between the two passes": (lambda t: state_dict_mid_step(), RuntimeError,
                                          r"state_dict\(\) was called between first_step\(\) and second_step\(\)"),
    "checkpoint of another world size": (written_by({"world_size": 2}), ValueError,
                                         r"checkpoint\.pt: the state was written with world size 2 and cannot "
                                         r"continue with 1"),
    "checkpoint of another optimizer class": (written_by({"optimizer": "XSAM"}), ValueError,
                                              r"optimizer class 'XSAM' and cannot continue with 'PlainStep'"),
    "checkpoint without a checksum": (checkpoint_of_a_number, ValueError,
                                      r"old.pt has no 'checkpoint' record with a checksum"),
    "crafted checkpoint reopened live": (lambda t: LiveRun.open(crafted(make_run(t), t)), ValueError,
                                         r"checkpoint \S*copy/checkpoint.pt cannot be read safely"),
    "checkpoint missing": (lambda t: Trainer.from_checkpoint(t / "none.pt"), ValueError,
                           r"checkpoint \S*none.pt does not exist"),
    "lr_milestones a number": (lambda t: TrainConfig(lr_milestones=0.5), ValueError,
                               r"lr_milestones must be a list of fractions in \(0, 1\]"),
    "unknown dataset name": (lambda t: load_dataset("imagenet"), ValueError, r"^dataset must be one of"),
    "unknown model name": (lambda t: build_model("vit", input_shape=(2,), num_classes=2), ValueError,
                           r"^model must be one of"),
    "malformed JSON file": (lambda t: read_json(write(t / "x.json", "{")), ValueError,
                            r"x.json is not a readable JSON file"),
    "config.json not a config": (lambda t: RunFolder(write(t / "r" / "config.json", '{"lr": -1}').parent)
                                 .read_config(), ValueError, r"config.json: lr must be in"),
}
# fmt: on


@pytest.mark.parametrize("name", list(LIBRARY_ROWS), ids=list(LIBRARY_ROWS))
def test_bad_library_input_raises_a_message_that_says_what_is_wrong(name, tmp_path):
    call, error, message = LIBRARY_ROWS[name]
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert not (tmp_path / "code-ran").exists()


def test_the_summary_of_a_nan_loss_is_strict_json(tmp_path):
    config = TrainConfig(dataset="moons", dataset_options={"num_samples": 200}, model="mlp", steps=3,
                         probe_every=None, batch_size=32, lr=1e38, divergence_factor=1e300)  # fmt: skip
    Trainer(config, run_dir=tmp_path / "run").run()
    text = (tmp_path / "run" / "summary.json").read_text()

    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in summary.json")

    summary = json.loads(text, parse_constant=refuse)
    assert summary["status"] == "diverged" and summary["final_step"] == 0
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert not math.isfinite(history[history.metric == "train_loss"].value.iloc[-1])  # kept in the history,
    first_loss = history.value[(history.metric == "train_loss") & (history.step == 0)].item()
    assert summary["final"]["train_loss"] == first_loss  # ...but the final metrics are step 0's


def test_history_tmp_left_by_a_killed_run_is_gone_at_the_next_start(tmp_path):
    folder = tmp_path / "run"
    write(folder / "history.csv.tmp", "step,epoch,metric,value\n")
    write(folder / "checkpoint.pt.tmp", "half a checkpoint")
    config = TrainConfig(dataset="moons", dataset_options={"num_samples": 200}, model="mlp", steps=2,
                         probe_every=None, batch_size=32)  # fmt: skip
    Trainer(config, run_dir=folder).run()
    assert not list(folder.glob("*.tmp")) and (folder / "summary.json").is_file()
