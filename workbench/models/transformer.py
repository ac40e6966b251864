"""A small causal transformer over tokens (a character-level language model), built so that every curvature tool
works on it: attention is written out (no fused kernel without double backward), and BatchNorm-free."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench._checks import check_int


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions ≤ t. Shapes: ``(B, L, width)`` → the same."""

    def __init__(self, width: int, heads: int, length: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.register_buffer("mask", torch.ones(length, length).tril().bool(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        query, key, value = self.qkv(x).split(width, dim=-1)
        shape = (batch, length, self.heads, width // self.heads)
        query, key, value = (t.reshape(shape).transpose(1, 2) for t in (query, key, value))  # (B, heads, L, d)
        scores = query @ key.transpose(-2, -1) / math.sqrt(width // self.heads)
        scores = scores.masked_fill(~self.mask[:length, :length], float("-inf"))
        mixed = scores.softmax(dim=-1) @ value
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x)) with a 4× GELU hidden layer."""

    def __init__(self, width: int, heads: int, length: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, length)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """Token and position embeddings, ``depth`` blocks, a final norm and a linear head.

    Shapes: token indices ``(B, L)`` (int64, L ≤ the context length) → logits ``(B, vocabulary, L)``, the class
    dimension second as ``F.cross_entropy`` takes it (so the default loss trains it on next-token targets ``(B, L)``).
    """

    def __init__(self, vocabulary: int, length: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, width)
        self.positions = nn.Parameter(torch.zeros(length, width))
        nn.init.normal_(self.positions, std=0.02)
        self.blocks = nn.Sequential(*(Block(width, heads, length) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocabulary)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tokens(tokens) + self.positions[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x))).transpose(1, 2)


def build_transformer(
    *, input_shape: Sequence[int], num_classes: int, width: int = 64, depth: int = 2, heads: int = 4
) -> CharTransformer:
    """A small causal character transformer (≈ 110k parameters at the defaults with 96 characters).

    Args:
        input_shape: ``(L,)``, the context length in tokens.
        num_classes: the vocabulary size (logits per position).
        width: embedding width, divisible by ``heads``.
        depth: transformer blocks, >= 1.
        heads: attention heads, >= 1.
    """
    if len(input_shape) != 1:
        raise ValueError(f"input_shape must be (length,) for the transformer (token windows), got {tuple(input_shape)}")
    length = check_int("input length", int(input_shape[0]), minimum=1)
    width = check_int("width", width, minimum=1)
    heads = check_int("heads", heads, minimum=1)
    if width % heads:
        raise ValueError(f"width must be divisible by heads, got width {width} and heads {heads}")
    return CharTransformer(num_classes, length, width, check_int("depth", depth, minimum=1), heads)
