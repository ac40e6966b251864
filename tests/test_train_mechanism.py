"""The opt-in step decomposition and the scale probes on the Trainer's schedule: exact identities in float64, the
first-order prediction of λ1's change, nothing extra when off, a resumed run equal to a straight one, bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.probes import adaptive_worst_case_sharpness
from workbench.train import TrainConfig, Trainer

MECHANISM_STEP = ("lambda_1_rate", "lambda_1_change", "mechanism_hvps")
DECOMPOSITION = (
    "lambda_1_rate_gradient",
    "lambda_1_rate_second_order",
    "lambda_1_rate_remainder",
    "remainder_share",
    "remainder_along",
    "remainder_along_taylor",
    "remainder_norm",
    "second_order_norm",
)


def network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 3)).double()


def batches(count: int = 6, size: int = 24, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count * size, 4, generator=generator, dtype=torch.float64)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, count * size, size)]


def cross_entropy(net: nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(net(batch[0]), batch[1])


def config(**changes) -> TrainConfig:
    base = TrainConfig(optimizer="sam", rho=0.05, lr=0.05, momentum=0.0, weight_decay=0.0, steps=12, eval_every=6,
                       probe_every=4, probe_trace=False, probe_mechanism=True, schedule="constant")  # fmt: skip
    return base.replace(device="cpu", **changes)


def trained(settings: TrainConfig, **own) -> Trainer:
    data = batches()
    trainer = Trainer(settings, model=network(), train_data=data, probe_data=data[0], **own)
    trainer.run()
    return trainer


def probe_table(trainer: Trainer) -> pd.DataFrame:
    frame = trainer.history.to_frame()
    return frame.pivot_table(index="step", columns="metric", values="value").dropna(subset=["lambda_1"])


@pytest.mark.parametrize(
    "changes", [{}, {"optimizer": "xsam", "alpha": 0.5, "freq": 2}, {"optimizer": "eigensam", "freq": 2}]
)
def test_without_momentum_the_update_rate_is_the_sum_of_its_parts(changes):
    table = probe_table(trained(config(**changes)))
    assert list(table.index) == [0, 4, 8]
    assert set(MECHANISM_STEP + DECOMPOSITION + ("lambda_1_gradient_norm", "lambda_1_relative_gap")) <= set(table)
    parts = table.lambda_1_rate_gradient + table.lambda_1_rate_second_order + table.lambda_1_rate_remainder
    pd.testing.assert_series_equal(parts, table.lambda_1_rate, check_names=False, rtol=1e-9, atol=1e-15)
    share = table.lambda_1_rate_remainder / parts
    pd.testing.assert_series_equal(share, table.remainder_share, check_names=False)
    assert (table.remainder_along_taylor >= 0).all() and (table.mechanism_hvps > 0).all()


def test_small_steps_change_lambda_1_by_the_predicted_rate():
    table = probe_table(trained(config(lr=0.002, steps=9)))
    # first order in the step: measured within 0.02 % here (λ1 solved to a relative residual of 1e-4)
    pd.testing.assert_series_equal(table.lambda_1_change, table.lambda_1_rate, check_names=False, rtol=0.01)


def test_plain_sgd_logs_the_rate_but_no_decomposition():
    table = probe_table(trained(config(optimizer="sgd", rho=None, momentum=0.9)))
    assert set(MECHANISM_STEP) <= set(table) and not set(DECOMPOSITION) & set(table)


def test_off_by_default_scale_probes_always_and_adaptive_sharpness_on_request():
    data = batches()
    settings = config(probe_mechanism=False, probe_adaptive_rho=0.2, probe_adaptive_steps=3)
    trainer = Trainer(settings, model=network(), train_data=data, probe_data=data[0])
    expected = adaptive_worst_case_sharpness(trainer.model, F.cross_entropy, data[0], rho=0.2, steps=3, seed=0)
    weights = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).norm()
    with torch.no_grad():
        logits = trainer.model(data[0][0]).norm(dim=1).mean()
    trainer.run()
    assert trainer.mechanism_probe is None
    table = probe_table(trainer)
    assert not set(MECHANISM_STEP + DECOMPOSITION) & set(table)
    first = table.loc[0]
    assert first.adaptive_sharpness == pytest.approx(expected.value)
    assert first.weight_norm == pytest.approx(float(weights)) and first.logit_norm == pytest.approx(float(logits))
    assert "adaptive_sharpness" not in probe_table(trained(config(probe_mechanism=False)))


def test_a_model_batch_loss_has_no_logit_norm():
    table = probe_table(trained(config(probe_mechanism=False), loss_fn=cross_entropy))
    assert "weight_norm" in table and "logit_norm" not in table


def test_resume_equals_the_uninterrupted_run(tmp_path):
    settings = config(optimizer="xsam", alpha=0.5, freq=2, momentum=0.9, steps=10, probe_every=3)
    data = batches()
    own = {"train_data": data, "probe_data": data[0]}
    straight = Trainer(settings, model=network(), **own)
    straight.run()
    first = Trainer(settings, model=network(), run_dir=tmp_path / "first", **own)
    first.callbacks.append(lambda event: first.stop() if event.kind == "step" and first.step == 5 else None)
    assert first.run().status == "stopped"
    resumed = Trainer.from_checkpoint(tmp_path / "first" / "checkpoint.pt", model=network(), **own)
    resumed.run()

    def deterministic(trainer: Trainer) -> pd.DataFrame:
        frame = trainer.history.to_frame()
        return frame[frame.metric != "seconds"].reset_index(drop=True)

    pd.testing.assert_frame_equal(deterministic(resumed), deterministic(straight))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"probe_every": None}, "probe_mechanism runs on the probe schedule"),
        ({"probe_mechanism": False, "probe_every": None, "probe_adaptive_rho": 0.1}, "probe_adaptive_rho runs on"),
        ({"probe_adaptive_rho": 0.0}, "probe_adaptive_rho must be"),
        ({"probe_adaptive_steps": 0}, "probe_adaptive_steps must be"),
        ({"probe_mechanism": "yes"}, "probe_mechanism must be true or false"),
    ],
)
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        config(**changes)
