"""The small protocol every curvature routine runs on, and a dense implementation of it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric n × n operator applied to row vectors: what eigensolvers and estimators need.

    ``HessianOperator`` implements it; so does ``DenseOperator`` (an explicit matrix, for checks and 2-D toys).
    """

    num_params: int
    dtype: torch.dtype
    device: torch.device

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        """Return A·vᵢ for each row vᵢ of ``vectors`` ``(b, n)``, as ``(b, n)``."""
        ...


class DenseOperator:
    """An explicit symmetric matrix ``(n, n)`` behind the ``SymmetricOperator`` interface, counting products."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.num_params = int(matrix.shape[0])
        self.dtype = matrix.dtype
        self.device = matrix.device
        self.num_hvps = 0

    def batched_matvec(self, vectors: torch.Tensor) -> torch.Tensor:
        """Return ``vectors @ matrix`` (the matrix is symmetric), counting one product per row."""
        if vectors.dim() != 2 or vectors.shape[1] != self.num_params:
            raise ValueError(f"vectors must have shape (b, {self.num_params}), got {tuple(vectors.shape)}")
        self.num_hvps += vectors.shape[0]
        return vectors.to(self.dtype) @ self.matrix
