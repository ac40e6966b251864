"""The training engine's small parts: config validation, history table, control flags, schedules, batches."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from workbench.train import History, TrainConfig
from workbench.train.batches import EpochBatches
from workbench.train.control import RunControl
from workbench.train.run_folder import RunFolder
from workbench.train.schedule import lr_factor


class TestConfig:
    def test_json_round_trip(self, tmp_path):
        config = TrainConfig(
            optimizer="xsam", alpha=1.0, lr_milestones=(0.3, 0.6), dataset_options={"num_samples": 500}
        )
        folder = RunFolder(tmp_path)
        folder.write_config(config)
        assert TrainConfig.load(folder.config) == config == folder.read_config()

    def test_yaml_file(self, tmp_path):
        (tmp_path / "config.yaml").write_text("optimizer: sam\nrho: 0.1\nprobe_every: 10\n")
        config = TrainConfig.load(tmp_path / "config.yaml")
        assert (config.optimizer, config.rho, config.probe_every) == ("sam", 0.1, 10)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"optimizer": "adam"}, "optimizer must be one of 'sgd', 'sam', 'asam', 'eigensam', 'xsam'"),
            ({"lr": -0.1}, r"lr must be in \(0, inf\)"),
            ({"lr": 0.0}, r"lr must be in \(0, inf\)"),
            ({"probe_every": 0}, "probe_every must be an integer >= 1"),
            ({"optimizer": "sam", "rho": 0.0}, "rho must be in"),
            ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
            ({"batch_size": 0}, "batch_size must be an integer >= 1"),
            ({"schedule": "linear"}, "schedule must be one of 'constant', 'cosine', 'step'"),
            ({"optimizer": "xsam", "orientation": "up"}, "orientation must be one of"),
            ({"rho": 0.1}, r"optimizer 'sgd' takes no rho \(it takes: none of them\)"),
            ({"amp": "yes"}, "amp must be one of .off., .bf16., .fp16.; got .yes."),
            ({"lr_milestones": (1.5,)}, "lr_milestones must be in"),
            ({"trace_samples": 3}, "trace_samples must be an integer >= 6"),
        ],
    )
    def test_bad_values_name_the_option(self, changes, message):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**changes)

    def test_unknown_key_lists_the_allowed_ones(self):
        with pytest.raises(ValueError, match=r"unknown config option.*learning_rate.*allowed: dataset"):
            TrainConfig.from_dict({"learning_rate": 0.1})


class TestHistory:
    def test_tidy_table_and_queries(self, tmp_path):
        history = History()
        history.log(0, 0.0, {"train_loss": 2.0, "lr": 0.1})
        history.log(1, 0.5, {"train_loss": 1.5})
        frame = history.to_frame()
        assert list(frame.columns) == ["step", "epoch", "metric", "value"]
        assert len(frame) == 3 and history.last("train_loss") == 1.5 and math.isnan(history.last("nothing"))
        assert history.series("train_loss").value.tolist() == [2.0, 1.5]
        for name in ("history.csv", "history.parquet"):
            history.save(tmp_path / name)
            assert History.load(tmp_path / name).rows_since(0) == history.rows_since(0)

    def test_readers_see_consistent_copies_while_a_writer_appends(self):
        history = History()
        done = threading.Event()

        def write() -> None:
            for step in range(2000):
                history.log(step, 0.0, {"a": float(step), "b": float(step)})
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            frame = history.to_frame()
            assert len(frame) % 2 == 0  # a step's two rows are appended together
        writer.join()
        assert len(history) == 4000

    def test_load_rejects_other_tables(self, tmp_path):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        with pytest.raises(ValueError, match="not a history table"):
            History.load(tmp_path / "x.csv")


def test_run_control_pause_resume_stop_across_threads():
    control = RunControl()
    passed = threading.Event()
    control.pause()

    def loop() -> None:
        control.wait_while_paused()
        passed.set()

    thread = threading.Thread(target=loop)
    thread.start()
    time.sleep(0.1)
    assert control.paused and not passed.is_set()
    control.resume()
    thread.join(timeout=2)
    assert passed.is_set()
    control.pause()
    control.stop()  # stop releases a paused loop
    control.wait_while_paused()
    assert control.should_stop


def test_learning_rate_schedules():
    assert lr_factor("constant", 7, 10, (), 0.1) == 1.0
    assert lr_factor("cosine", 0, 10, (), 0.1) == 1.0
    assert lr_factor("cosine", 5, 10, (), 0.1) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 10, (), 0.1) == pytest.approx(0.0)
    factors = [lr_factor("step", step, 100, (0.5, 0.75), 0.1) for step in (0, 49, 50, 74, 75, 99)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_batches_depend_only_on_seed_and_step():
    inputs, targets = torch.arange(50.0).unsqueeze(1), torch.arange(50)
    batches = EpochBatches(inputs, targets, batch_size=8, seed=3)
    assert batches.steps_per_epoch == 6
    epoch = torch.cat([batches.batch(step)[1] for step in range(6)])
    assert len(set(epoch.tolist())) == 48  # one epoch: no sample twice
    fresh = EpochBatches(inputs, targets, batch_size=8, seed=3)
    for step in (13, 2, 7):  # any order, same batches
        torch.testing.assert_close(fresh.batch(step)[0], batches.batch(step)[0])
    assert not torch.equal(batches.batch(6)[1], batches.batch(0)[1])  # a new permutation each epoch
