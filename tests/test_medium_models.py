"""Medium models end to end on the CPU: ResNet-18 (11.2 M parameters) with every optimizer and WRN-28-10 (36.5 M)
with X-SAM (refresh and correction: the most work per step), on CIFAR-shaped data from a DataLoader. Each run is two
steps (an eigenvector refresh happens before the second); the curvature probes (λ1 by Lanczos on a probe batch of 2)
run in each model's first run, whose cost dominates. Slow on purpose, kept small."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from workbench.models import build_model
from workbench.train import TrainConfig, Trainer

SETTINGS = {"steps": 2, "probe_every": 2, "probe_batch_size": 2, "probe_trace": False, "eval_every": 100,
            "device": "cpu", "lr": 0.01}  # fmt: skip
TRACKING = ("eigensam", "xsam")


def cifar_shaped(samples: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(samples, 3, 32, 32, generator=generator)
    return DataLoader(TensorDataset(images, torch.randint(0, 10, (samples,), generator=generator)), batch_size=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options", "optimizers"),
    [
        ("resnet18", {}, ("sgd", "sam", "asam", "eigensam", "xsam")),
        ("wideresnet", {"depth": 28, "widen_factor": 10}, ("xsam",)),
    ],
    ids=["resnet18", "wrn-28-10"],
)
def test_medium_models_train_and_probe_with_every_optimizer(name, options, optimizers):
    data = cifar_shaped()
    model = build_model(name, input_shape=(3, 32, 32), num_classes=10, seed=0, **options)
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    for index, optimizer in enumerate(optimizers):
        model.load_state_dict(initial)
        tracking = {"freq": 1, "power_iters": 1} if optimizer in TRACKING else {}
        probes = {} if index == 0 else {"probe_every": None}
        config = TrainConfig(optimizer=optimizer, **{**SETTINGS, **probes}, **tracking)
        trainer = Trainer(config, model=model, train_data=data, test_data=data)
        result = trainer.run()
        assert result.status == "finished", (optimizer, result.reason)
        assert math.isfinite(trainer.history.last("train_loss")) and math.isfinite(trainer.history.last("test_loss"))
        if index == 0:
            assert trainer.history.last("lambda_1") > 0 and trainer.history.last("angle_g_v1") >= 0
        if optimizer in TRACKING:
            assert trainer.optimizer.tracker.num_refreshes == 1
