"""The models and data the optimizer and tracker benchmarks share: the library's own networks on small data sets.

* ``mnist1d``: the library's 1-D CNN (width 32, depth 3, BatchNorm; 32,554 parameters) on MNIST-1D's 4,000
  training sequences (generated locally by the ``mnist1d`` package, cached).
* ``cifar-shaped``: the library's 2-D CNN at width 16 (BatchNorm; 24,346 parameters) on 4,096 learnable
  CIFAR-shaped images: 0.15 × one of ten smooth class templates (8×8 noise, bilinearly upsampled) plus unit
  Gaussian noise per pixel. No download; a network learns it in a few hundred steps.
* ``digits-mlp``: the library's MLP (64 → 128 → 128 → 10, ReLU; 26,122 parameters) on sklearn's 8×8 digits.
* ``mnist1d-no-bn``: ``mnist1d``'s CNN without BatchNorm (``norm="none"``): a model whose train and eval modes
  compute the same, so the optimizers' first pass can serve the eigenvector refresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench.datasets import load_dataset
from workbench.models import build_model

WORKLOADS = ("mnist1d", "cifar-shaped", "digits-mlp", "mnist1d-no-bn")


@dataclass
class Workload:
    """A model (on the CPU, float32) and its training inputs and targets."""

    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    description: str

    def batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` training samples drawn at random (with replacement) by ``seed``."""
        index = torch.randint(0, len(self.targets), (size,), generator=torch.Generator().manual_seed(seed))
        return self.inputs[index], self.targets[index]


def make_workload(name: str, seed: int = 0) -> Workload:
    """The workload ``name`` (one of ``WORKLOADS``), its weights drawn from ``seed``."""
    if name in ("mnist1d", "mnist1d-no-bn"):
        data = load_dataset("mnist1d", seed=seed)
        inputs, targets = data.train.tensors
        norm = "none" if name == "mnist1d-no-bn" else "batch"
        model = build_model("cnn", input_shape=data.input_shape, num_classes=10, seed=seed, norm=norm)
        description = f"MNIST-1D ({len(targets)} training sequences), 1-D CNN" + (", no BatchNorm" * (norm == "none"))
        return Workload(model, inputs, targets, description)
    if name == "digits-mlp":
        data = load_dataset("digits", seed=seed, image=False)
        inputs, targets = data.train.tensors
        model = build_model("mlp", input_shape=data.input_shape, num_classes=10, seed=seed)
        return Workload(model, inputs, targets, f"digits ({len(targets)} training images, flat), MLP 128-128")
    if name != "cifar-shaped":
        raise ValueError(f"workload must be one of {WORKLOADS}, got {name!r}")
    generator = torch.Generator().manual_seed(seed)
    templates = F.interpolate(torch.randn(10, 3, 8, 8, generator=generator), size=32, mode="bilinear")
    targets = torch.randint(0, 10, (4096,), generator=generator)
    inputs = 0.15 * templates[targets] + torch.randn(4096, 3, 32, 32, generator=generator)
    model = build_model("cnn", input_shape=(3, 32, 32), num_classes=10, seed=seed, width=16)
    description = "CIFAR-shaped (4,096 images: 0.15 × class template + unit noise), 2-D CNN width 16"
    return Workload(model, inputs, targets, description)
