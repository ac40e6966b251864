"""Learning-rate schedules as pure functions of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math
from collections.abc import Sequence


def lr_factor(schedule: str, step: int, total_steps: int, milestones: Sequence[float], gamma: float) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    ``"constant"``: 1. ``"cosine"``: ½(1 + cos(π·step/total)), annealing to 0 at the end. ``"step"``: multiplied
    by ``gamma`` at each milestone, given as fractions of the run (e.g. 0.5 = half-way).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "step":
        return gamma ** sum(step >= milestone * total_steps for milestone in milestones)
    raise ValueError(f"schedule must be one of 'constant', 'cosine', 'step'; got {schedule!r}")
