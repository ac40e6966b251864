"""Small training configs for the UI tests: a two-moons MLP trains hundreds of steps per second."""

from __future__ import annotations

from workbench.datasets import load_dataset
from workbench.train import TrainConfig

MOONS = {"num_samples": 300}


def moons_config(**changes) -> TrainConfig:
    base = TrainConfig(
        dataset="moons",
        dataset_options=MOONS,
        model="mlp",
        model_options={"hidden_sizes": [16, 16]},
        optimizer="sam",
        lr=0.1,
        batch_size=32,
        steps=40,
        probe_every=10,
        probe_batch_size=64,
        trace_samples=6,
        schedule="constant",
    )
    return base.replace(**changes)


def moons_data():
    return load_dataset("moons", seed=0, **MOONS)
