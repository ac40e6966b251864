"""How many ascent steps does worst-case sharpness need? The estimate after s steps, as a fraction of the estimate
after ``--max-steps`` steps, for a small CNN trained briefly on sklearn's 8×8 digits (ships with scikit-learn).

Step 1 is SAM's one-step estimate ρ·g/‖g‖; every estimate is a loss increase at a feasible δ, so a larger
fraction is strictly better. Prints one row per radius, for the Euclidean and the adaptive (ASAM) ball.

Example:
    python benchmarks/worst_case_steps.py --max-steps 50
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from workbench.probes import adaptive_worst_case_sharpness, worst_case_sharpness

REPORTED_STEPS = (1, 2, 3, 5, 10, 20)


def trained_digits_cnn(epochs: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A conv → BatchNorm → ReLU → pool → linear net after ``epochs`` epochs of SGD on 1500 digits; 256 held out."""
    torch.manual_seed(seed)
    digits = load_digits()
    inputs = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    targets = torch.tensor(digits.target)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for batch in torch.randperm(1500).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval(), inputs[1500:1756], targets[1500:1756]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, inputs, targets = trained_digits_cnn(args.epochs, args.seed)
    data = (inputs, targets)
    header = " ".join(f"{f's={s}':>7}" for s in REPORTED_STEPS if s < args.max_steps)
    print(f"fraction of the {args.max_steps}-step estimate reached after s steps (digits CNN, {args.epochs} epochs)")
    print(f"{'ball':<10} {'rho':>5} {header} {f'{args.max_steps}-step value':>16}")
    for adaptive, radii in ((False, (0.05, 0.1, 0.2, 0.5)), (True, (0.1, 0.5, 1.0))):
        for rho in radii:
            probe = adaptive_worst_case_sharpness if adaptive else worst_case_sharpness
            result = probe(model, F.cross_entropy, data, rho=rho, steps=args.max_steps)
            best_so_far = [max(result.history[: s + 1]) for s in range(len(result.history))]
            fractions = " ".join(
                f"{best_so_far[s - 1] / result.value:7.3f}" for s in REPORTED_STEPS if s < args.max_steps
            )
            print(f"{'adaptive' if adaptive else 'euclidean':<10} {rho:5.2f} {fractions} {result.value:16.4g}")


if __name__ == "__main__":
    main()
