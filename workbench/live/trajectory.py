"""The weights along training, kept as flat CPU copies at regular steps, for PCA directions and projections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench._checks import check_int
from workbench.params import flatten


@dataclass(frozen=True)
class Trajectory:
    """Parameter snapshots θ_t of one run.

    Attributes:
        steps: ``(T,)`` the optimizer step of each snapshot (0 = the initial weights).
        params: ``(T, n)`` float CPU tensor, row t the flat trainable parameters (``model.parameters()`` order).
    """

    steps: np.ndarray
    params: torch.Tensor

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``torch.save``), atomically."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        torch.save({"steps": self.steps.tolist(), "params": self.params}, temporary)
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        """Read a file written by ``save``."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls(np.asarray(state["steps"], dtype=np.int64), state["params"])


class TrajectoryRecorder:
    """Copies the flat parameters every ``every`` steps, keeping at most ``limit`` snapshots.

    When the limit is reached every other snapshot is dropped and the interval doubles, so the kept ones stay
    evenly spaced over the whole run and memory stays below ``limit · n`` values.

    Args:
        every: steps between snapshots, ≥ 1.
        limit: most snapshots kept, ≥ 3 (a plane of PCA directions needs three points).
    """

    def __init__(self, every: int, limit: int) -> None:
        self.every = check_int("every", every, minimum=1)
        self.limit = check_int("limit", limit, minimum=3)
        self._steps: list[int] = []
        self._params: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._steps)

    def record(self, step: int, model: torch.nn.Module, *, force: bool = False) -> None:
        """Keep a copy of ``model``'s trainable parameters at ``step`` if it is on the schedule (or ``force``)."""
        if not force and step % self.every:
            return
        if self._steps and self._steps[-1] == step:
            return
        params = [p.detach() for p in model.parameters() if p.requires_grad]
        self._steps.append(int(step))
        self._params.append(flatten(params).to("cpu", copy=True))
        if len(self._steps) >= self.limit:
            self._steps, self._params = self._steps[::2], self._params[::2]
            self.every *= 2

    def trajectory(self) -> Trajectory | None:
        """The snapshots so far (None before the first)."""
        if not self._steps:
            return None
        return Trajectory(np.asarray(self._steps, dtype=np.int64), torch.stack(self._params))

    @classmethod
    def resumed(cls, trajectory: Trajectory | None, every: int, limit: int) -> TrajectoryRecorder:
        """A recorder continuing ``trajectory`` (e.g. loaded with a checkpoint), at its spacing if that is wider."""
        if trajectory is not None and len(trajectory.steps) >= 2:
            every = max(every, int(np.diff(trajectory.steps).min()))
        recorder = cls(every, limit)
        if trajectory is not None:
            recorder._steps = trajectory.steps.tolist()
            recorder._params = list(trajectory.params)
        return recorder
