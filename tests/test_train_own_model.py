"""The Trainer on a user's own model, DataLoader and loss: dict batches, streaming with exact resume, gradient
accumulation equal to the full batch, mixed precision on the CPU, and a clear message for every misuse."""

from __future__ import annotations

import pandas
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from workbench.train import TrainConfig, Trainer
from workbench.train.run_folder import RunFolder

FEATURES, CLASSES = 6, 3


class DictSet(Dataset):
    """Hugging Face style samples: {"features": (6,), "labels": ()}."""

    def __init__(self, count: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(count, FEATURES, generator=generator)
        self.labels = (self.features[:, 0] > 0).long() + (self.features[:, 1] > 0.5).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "labels": self.labels[index]}


def model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh(), nn.Linear(16, CLASSES)).to(dtype)


def dict_loss(net: nn.Module, batch: dict) -> torch.Tensor:
    return F.cross_entropy(net(batch["features"]), batch["labels"])


def dict_metrics(net: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    return {"accuracy": (net(batch["features"]).argmax(1) == batch["labels"]).float().mean()}


def config(**changes) -> TrainConfig:
    base = TrainConfig(optimizer="eigensam", freq=3, steps=8, probe_every=4, probe_batch_size=32, trace_samples=6,
                       lr=0.1, schedule="constant", eval_every=4, device="cpu")  # fmt: skip
    return base.replace(**changes)


def loaders(batch: int = 16, workers: int = 0) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(DictSet(96), batch_size=batch, shuffle=True, num_workers=workers)
    return train, DataLoader(DictSet(40, seed=1), batch_size=20)


def test_own_model_dict_batches_custom_loss_and_metrics_train_probe_and_evaluate(tmp_path):
    train, test = loaders()
    net = model()
    trainer = Trainer(config(), model=net, train_data=train, test_data=test, loss_fn=dict_loss,
                      metrics_fn=dict_metrics, run_dir=tmp_path / "run")  # fmt: skip
    result = trainer.run()
    assert result.status == "finished" and trainer.model is net
    history = trainer.history.to_frame()
    logged = set(history.metric)
    assert {"train_loss", "test_loss", "test_accuracy", "train_eval_loss", "train_accuracy", "lambda_1", "trace",
            "angle_g_v1", "alignment_eps_v1", "opt_cos_perturbation_eigenvector"} <= logged  # fmt: skip
    assert sorted(set(history[history.metric == "lambda_1"].step)) == [0, 4]
    saved = RunFolder(tmp_path / "run").read_config()
    assert (saved.dataset, saved.model, saved.dataset_options) == (None, None, {})
    with torch.no_grad():
        expected = sum(float(dict_loss(net, batch)) * len(batch["labels"]) for batch in test) / 40
    assert trainer.history.last("test_loss") == pytest.approx(expected, rel=1e-6)


def test_a_streamed_run_resumes_exactly_from_a_checkpoint(tmp_path):
    train, test = loaders()
    whole = Trainer(config(steps=14), model=model(), train_data=train, test_data=test, loss_fn=dict_loss)
    checkpoint = tmp_path / "at9.pt"

    def save_at_9(event) -> None:
        if event.kind == "boundary" and event.step == 9:  # mid-epoch (6 batches per epoch)
            whole.save_checkpoint(checkpoint)

    whole.callbacks.append(save_at_9)
    whole.run()
    resumed = Trainer.from_checkpoint(checkpoint, model=model(seed=5), train_data=train, test_data=test,
                                      loss_fn=dict_loss)  # fmt: skip
    resumed.run()
    untimed = [history.to_frame().query("metric != 'seconds'") for history in (whole.history, resumed.history)]
    pandas.testing.assert_frame_equal(untimed[1], untimed[0])
    assert all(torch.equal(a, b) for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True))


def test_loader_workers_and_a_given_probe_batch():
    train, _ = loaders(workers=1)
    probe = {"features": torch.randn(10, FEATURES), "labels": torch.randint(0, CLASSES, (10,))}
    trainer = Trainer(config(steps=3, optimizer="sam", freq=None), model=model(), train_data=train, loss_fn=dict_loss,
                      probe_data=probe)  # fmt: skip
    trainer.run()
    assert trainer.inputs.probe_batch["features"].shape == (10, FEATURES)
    assert "test_loss" not in set(trainer.history.to_frame().metric)  # no test_data: no test metrics


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "asam", "eigensam", "xsam"])
def test_gradient_accumulation_equals_the_full_batch_in_float64(optimizer):
    inputs = torch.randn(48, FEATURES, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    targets = (inputs[:, 0] > 0).long()
    data = [(inputs[:24], targets[:24]), (inputs[24:], targets[24:])]
    runs = []
    for parts in (1, 3):
        freq = 2 if optimizer in ("eigensam", "xsam") else None
        trainer = Trainer(config(optimizer=optimizer, steps=5, micro_batches=parts, probe_every=None, freq=freq),
                          model=model(dtype=torch.float64), train_data=data)  # fmt: skip
        trainer.run()
        runs.append(trainer)
    for full, accumulated in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        torch.testing.assert_close(accumulated, full, rtol=0, atol=1e-10)


def test_bf16_autocast_trains_on_the_cpu_and_probes_in_float32():
    train, test = loaders()
    trainer = Trainer(config(amp="bf16"), model=model(), train_data=train, test_data=test, loss_fn=dict_loss)
    result = trainer.run()
    assert result.status == "finished" and trainer.optimizer.grad_scaler is None
    assert all(param.dtype == torch.float32 for param in trainer.model.parameters())
    assert trainer.history.last("lambda_1") > 0 and trainer.optimizer.tracker.num_refreshes >= 1


def test_fp16_with_a_grad_scaler_skips_non_finite_steps_perturbation_included():
    train, test = loaders()
    trainer = Trainer(config(amp="fp16", optimizer="xsam", freq=2, steps=20, probe_every=None), model=model(),
                      train_data=train, test_data=test, loss_fn=dict_loss)  # fmt: skip
    scaler = trainer.optimizer.grad_scaler
    scaler._init_scale = 2.0**22  # float16 overflows at 65504: the first steps' scaled gradients are inf
    before = [param.detach().clone() for param in trainer.model.parameters()]
    first_weights = []
    trainer.callbacks.append(
        lambda event: first_weights.append([p.detach().clone() for p in trainer.model.parameters()])
        if event.kind == "step" and event.step == 1
        else None
    )
    trainer.run()
    history = trainer.history.to_frame()
    skipped = sorted(history[history.metric == "opt_skipped"].step)
    assert skipped[:2] == [0, 1] and len(skipped) < 20  # skipped while the scale is too large, then it trains
    assert all(torch.equal(a, b) for a, b in zip(before, first_weights[0], strict=True))  # θ restored exactly
    assert scaler.get_scale() < 2.0**22
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


class TestMisuse:
    def test_a_loss_that_is_not_a_finite_scalar_at_the_first_step(self):
        train, _ = loaders()
        with pytest.raises(ValueError, match=r"loss_fn must return a scalar tensor .* returned \(\d+, 3\)"):
            Trainer(config(), model=model(), train_data=train,
                    loss_fn=lambda net, batch: net(batch["features"])).run()  # fmt: skip
        with pytest.raises(ValueError, match="loss_fn returned nan at the first step"):
            Trainer(config(), model=model(), train_data=train,
                    loss_fn=lambda net, batch: dict_loss(net, batch) * float("nan")).run()  # fmt: skip

    def test_a_batch_the_default_loss_cannot_use_says_what_to_pass(self):
        train, _ = loaders()
        with pytest.raises(ValueError, match=r"each batch must be an \(inputs, targets\) pair.*loss_fn="):
            Trainer(config(), model=model(), train_data=train).run()

    def test_a_model_without_trainable_parameters(self):
        frozen = model().requires_grad_(False)
        with pytest.raises(ValueError, match="model has no trainable parameters"):
            Trainer(config(), model=frozen, train_data=loaders()[0], loss_fn=dict_loss)

    @pytest.mark.parametrize(
        ("train_data", "message"),
        [
            ([], "train_data is empty"),
            (iter([(torch.zeros(2, FEATURES), torch.zeros(2).long())]), "train_data is an iterator"),
            (DataLoader(TensorDataset(torch.zeros(0, FEATURES)), batch_size=4), "train_data is empty"),
            (["text"], "train_data batch 0 must be a tuple, list or dict of tensors, got str"),
        ],
    )
    def test_unusable_training_data(self, train_data, message):
        with pytest.raises(ValueError, match=message):
            Trainer(config(), model=model(), train_data=train_data, loss_fn=dict_loss)

    def test_a_probe_batch_larger_than_the_data(self):
        with pytest.raises(ValueError, match=r"probe_batch_size 512 is larger than the training data \(96 samples\)"):
            Trainer(config(probe_batch_size=512), model=model(), train_data=loaders()[0], loss_fn=dict_loss)

    def test_own_data_without_a_model(self):
        with pytest.raises(ValueError, match="model is None: pass model="):
            Trainer(config(), train_data=loaders()[0], loss_fn=dict_loss)
