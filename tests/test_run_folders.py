"""Nothing lost, nothing trusted blindly: resume exactly, one run per folder, checked checkpoints, honest finals."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from tests.test_bad_input import fake_batch_run
from workbench.batch import collect
from workbench.cli import main
from workbench.train import TrainConfig, Trainer
from workbench.train.checkpoint import CheckpointError, read_checkpoint, state_digest, write_checkpoint
from workbench.train.run_folder import RunFolder

TOY = ["--dataset", "moons", "--dataset-option", "num_samples=300", "--model", "mlp", "--batch-size", "32"]
QUICK = ["--probe-every", "none", "--no-progress"]
RUN = [*TOY, "--optimizer", "eigensam", "--freq", "2", "--steps", "8", "--eval-every", "3", "--probe-every", "2",
       "--trace-samples", "6", "--probe-batch-size", "64", "--no-progress"]  # fmt: skip


def history_without_timings(folder) -> pd.DataFrame:
    frame = pd.read_csv(folder / "history.csv")
    return frame[frame.metric != "seconds"].reset_index(drop=True)


def interrupt_at(monkeypatch, step: int) -> None:
    """Make the next training raise KeyboardInterrupt (Ctrl-C) just before step ``step``."""
    original = Trainer._train_step

    def train_step(self) -> None:
        if self.step == step:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Trainer, "_train_step", train_step)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_uninterrupted_history(tmp_path, monkeypatch):
    assert main(["train", *RUN, "--run-dir", str(tmp_path / "straight")]) == 0
    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        interrupt_at(patch, 7)
        assert main(["train", *RUN, "--checkpoint-every", "3", "--run-dir", str(interrupted)]) == 130
    assert read_checkpoint(interrupted / "checkpoint.pt")["step"] == 6 and not (interrupted / "summary.json").exists()
    (interrupted / "history.csv.tmp").write_text("left by a killed write")
    # the same command again with --resume, or --resume alone: the run continues from step 6
    assert main(["train", *RUN, "--checkpoint-every", "3", "--resume", "--run-dir", str(interrupted)]) == 0
    pd.testing.assert_frame_equal(history_without_timings(interrupted), history_without_timings(tmp_path / "straight"))
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 8 and summary["final_step"] == 8
    assert not list(interrupted.glob("*.tmp")) and (interrupted / "report.html").is_file()
    assert main(["train", "--resume", "--run-dir", str(interrupted)]) == 0  # finished: nothing to do, nothing changed
    assert json.loads((interrupted / "summary.json").read_text()) == summary


def test_a_folder_holds_the_files_of_one_run_only(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    assert main(["train", *TOY, *QUICK, "--steps", "3", "--run-dir", str(folder)]) == 0
    (folder / "report.json").write_text("[]")  # what earlier versions wrote beside report.html
    (folder / "trajectory.pt").write_bytes(b"an older live run's weights")
    with monkeypatch.context() as patch:  # a killed --overwrite: the old run's outcome must not sit beside it
        interrupt_at(patch, 1)
        command = ["train", *TOY, "--steps", "3", "--lr", "0.2", "--probe-every", "none", "--no-progress"]
        assert main([*command, "--overwrite", "--run-dir", str(folder)]) == 130
    assert RunFolder(folder).run_entries() == ["config.json", "history.csv"]
    assert RunFolder(folder).read_config().lr == 0.2 and set(pd.read_csv(folder / "history.csv").step) == {0}


def test_a_library_trainer_replaces_the_previous_run_in_its_folder_and_save_to_another(tmp_path):
    config = TrainConfig(dataset="moons", dataset_options={"num_samples": 200}, model="mlp", steps=2,
                         probe_every=None, batch_size=32)  # fmt: skip
    first = Trainer(config, run_dir=tmp_path / "run")
    first.run()
    (tmp_path / "run" / "report.html").write_text("the first run's report")
    again = Trainer(config.replace(lr=0.2), run_dir=tmp_path / "run", data=first.data)
    at_start: list[list[str]] = []

    def look(event) -> None:
        if event.kind == "start":
            at_start.append(RunFolder(tmp_path / "run").entries())

    again.callbacks.append(look)
    again.run()
    assert at_start == [["config.json"]]  # when the new run starts, nothing of the first one is left
    other = tmp_path / "other"
    first.save_to(RunFolder(other))
    (other / "trajectory.pt").write_bytes(b"stale")
    again.save_to(RunFolder(other))
    assert not (other / "trajectory.pt").exists() and RunFolder(other).read_config().lr == 0.2


def test_checkpoints_load_plain_values_and_detect_a_changed_byte(tmp_path):
    pattern = torch.arange(4096, dtype=torch.float64) + 0.5
    path = write_checkpoint(tmp_path / "c.pt", {"weights": pattern, "step": 3, "names": ("a", None, 1.5)})
    state = read_checkpoint(path)
    assert torch.equal(state["weights"], pattern) and state["step"] == 3
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(pattern[1000:1001].numpy().tobytes())
    data[offset] ^= 1  # one bit of one weight, inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is corrupted: its contents do not match"):
        read_checkpoint(path)
    with pytest.raises(TypeError, match=r"state\['rng'\] is a Generator"):
        state_digest({"rng": torch.Generator()})


def test_a_trainer_checkpoint_is_plain_values_and_records_its_writer(tmp_path):
    config = TrainConfig(dataset="moons", dataset_options={"num_samples": 200}, model="mlp", optimizer="xsam",
                         freq=2, steps=3, probe_every=2, trace_samples=6, batch_size=32)  # fmt: skip
    trainer = Trainer(config, run_dir=tmp_path / "run")
    trainer.run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # plain torch can read it too
    assert state["writer"]["optimizer"] == "XSAM" and state["writer"]["world_size"] == 1
    assert state["writer"]["torch"] == str(torch.__version__) and state["writer"]["workbench"]
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor) and state["checkpoint"]["sha256"]
    resumed = Trainer.from_checkpoint(tmp_path / "run" / "checkpoint.pt", data=trainer.data)
    assert resumed.step == 3
    pd.testing.assert_frame_equal(resumed.history.to_frame(), trainer.history.to_frame())


def test_a_diverged_run_says_so_and_keeps_its_last_evaluation_as_final(tmp_path):
    folder = tmp_path / "run"
    command = ["train", *TOY, "--steps", "6", "--eval-every", "2", "--probe-every", "none", "--no-progress"]
    assert main([*command, "--lr", "1e10", "--run-dir", str(folder)]) == 1
    summary = json.loads((folder / "summary.json").read_text())
    history = pd.read_csv(folder / "history.csv")
    evaluations = history[history.metric == "test_accuracy"]
    assert summary["status"] == "diverged" and summary["final_step"] == evaluations.step.max() < summary["steps"]
    assert summary["final"]["test_accuracy"] == evaluations.value.iloc[-1]
    last_losses = history[(history.metric == "train_loss") & (history.step > summary["final_step"])]
    assert len(last_losses) and summary["final"]["train_loss"] not in set(last_losses.value)


def test_batch_tables_carry_the_train_status_and_leave_diverged_runs_out_of_means(tmp_path):
    output = tmp_path / "batch"
    for index in (0, 1):
        fake_batch_run(output, index)
    diverged = fake_batch_run(output, 2, diverged=True)
    collection = collect(output)
    runs = collection.runs.set_index("run")
    assert runs.loc[diverged.name, "train_status"] == "diverged" and runs.loc[diverged.name, "final_step"] == 0
    assert runs.loc[diverged.name, "final_test_accuracy"] == 0.1  # step 0's evaluation, with its step beside it
    statistics = collection.statistics.set_index("group")
    assert statistics.loc["sgd", "final_test_accuracy_n"] == 2
    assert statistics.loc["sgd", "final_test_accuracy_mean"] == pytest.approx(0.805)
    summary = (output / "summary.md").read_text()
    assert "Left out of the statistics (training did not finish" in summary and f"{diverged.name} (diverged)" in summary
    assert f"{diverged.name} (diverged)" in (output / "report.html").read_text()


def test_report_writes_only_its_output_and_never_a_runs_own_file(tmp_path):
    folder = tmp_path / "run"
    assert main(["train", *TOY, *QUICK, "--steps", "2", "--run-dir", str(folder)]) == 0
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert main(["report", str(folder), "--output", str(folder / "summary.html")]) == 0
    after = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert set(after) - set(before) == {"summary.html"}
    assert all(after[name] == content for name, content in before.items())
    assert math.isfinite(json.loads(after["summary.json"])["final"]["test_accuracy"])
