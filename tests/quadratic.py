"""Quadratic losses L(θ) = ½ θᵀAθ + bᵀθ with a known Hessian A and top eigenvector, for exact optimizer checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

# A = Q diag(SPECTRUM) Qᵀ: the top eigenvalue 4 is also the largest in magnitude, so power iteration finds it.
SPECTRUM = (4.0, 1.0, 0.5, -0.25)


def rotation(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64)).Q


class Quadratic(nn.Module):
    """θ ∈ R⁴ split into parameters of sizes ``split`` (so multi-parameter flattening is exercised)."""

    def __init__(self, theta: torch.Tensor, *, b: torch.Tensor | None = None, split: Sequence[int] = (3, 1)) -> None:
        super().__init__()
        q = rotation()
        self.register_buffer("A", q @ torch.diag(torch.tensor(SPECTRUM, dtype=torch.float64)) @ q.T)
        self.register_buffer("b", torch.zeros(4, dtype=torch.float64) if b is None else b.clone())
        self.pieces = nn.ParameterList(nn.Parameter(piece.clone()) for piece in torch.split(theta, list(split)))

    @property
    def theta(self) -> torch.Tensor:
        return torch.cat([piece.detach() for piece in self.pieces])

    @property
    def top_eigenvector(self) -> torch.Tensor:
        return rotation()[:, 0]

    def forward(self) -> torch.Tensor:
        theta = torch.cat(list(self.pieces))
        return 0.5 * theta @ self.A @ theta + self.b @ theta

    def gradient_at(self, theta: torch.Tensor) -> torch.Tensor:
        """∇L(θ) = Aθ + b, computed by hand."""
        return self.A @ theta + self.b

    def closure(self) -> Callable[[], torch.Tensor]:
        def closure() -> torch.Tensor:
            loss = self()
            loss.backward()
            return loss

        return closure
