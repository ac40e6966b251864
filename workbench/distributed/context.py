"""This process's place in a torch.distributed run: its rank, the process group and the device it trains on.

``torchrun`` (or ``workbench train --nproc-per-node N``, which calls it) starts one process per device and tells
each its place through the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). ``distributed_context`` reads it and initialises the default process group from it, NCCL when
the process trains on CUDA and gloo on the CPU, unless the caller initialised a group already (the tests spawn
processes and do). Without that environment, or with ``WORLD_SIZE=1``, there is no context and training is the
ordinary single-process path.

A process that stops answering is detected by the next collective: a killed peer at once (its connections
close), a hung one after ``$WORKBENCH_COLLECTIVE_TIMEOUT`` seconds (default 600).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from workbench.devices import resolve_device

TIMEOUT_VARIABLE = "WORKBENCH_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600
_initialised_here = False


@dataclass(frozen=True)
class DistributedContext:
    """A process of a run on several processes.

    Attributes:
        rank: this process's index, 0 … world_size − 1; rank 0 alone writes the run folder.
        world_size: the number of processes, >= 2.
        local_rank: its index on its machine (the CUDA device it trains on).
        backend: "gloo" or "nccl".
        group: the process group the run's collectives use (the default group).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    group: Any

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes the run folder, evaluates and reports."""
        return self.rank == 0


def launched_world_size() -> int:
    """``WORLD_SIZE`` from the environment a launcher such as torchrun sets (1 without one)."""
    return _environment_int("WORLD_SIZE", 1)


def launched_rank() -> int:
    """``RANK`` from the launcher's environment (0 without one)."""
    return _environment_int("RANK", 0)


def training_device(device: str | torch.device) -> torch.device:
    """The device this process trains on for a config's ``device``: under a launcher of several processes on
    CUDA, ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK`` (one device per process); otherwise as
    ``resolve_device``.

    Raises:
        ValueError: for an explicit ``"cuda:N"`` under several processes (they cannot share one device), or as
            ``resolve_device``.
    """
    resolved = resolve_device(device)
    world_size = dist.get_world_size() if dist.is_initialized() else launched_world_size()
    if resolved.type != "cuda" or world_size == 1:
        return resolved
    if resolved.index is not None:
        raise ValueError(
            f"device={str(device)!r} names one CUDA device, but the run has {world_size} processes, one device each: "
            "use device 'auto' or 'cuda' (process i trains on cuda:LOCAL_RANK)"
        )
    return torch.device("cuda", _environment_int("LOCAL_RANK", 0))


def distributed_context(device: torch.device) -> DistributedContext | None:
    """This process's context: the default process group if one is initialised, else one initialised now from
    the launcher's environment (NCCL for a CUDA ``device``, gloo otherwise); None for a single process.

    Raises:
        ValueError: when the environment names a world size but lacks the rest of a launcher's variables.
    """
    global _initialised_here
    if not dist.is_initialized():
        if launched_world_size() == 1:
            return None
        missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE is {launched_world_size()} but {', '.join(missing)} is not set: start the processes "
                "with torchrun (or `workbench train --nproc-per-node N`)"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=collective_timeout())
        _initialised_here = True
    if dist.get_world_size() == 1:
        return None
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=_environment_int("LOCAL_RANK", dist.get_rank()),
        backend=dist.get_backend(),
        group=dist.group.WORLD,
    )


def collective_timeout() -> timedelta:
    """How long a collective waits for a silent peer: ``$WORKBENCH_COLLECTIVE_TIMEOUT`` seconds (default 600).

    Raises:
        ValueError: naming the variable when it is not a positive number.
    """
    text = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT_SECONDS))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"${TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return timedelta(seconds=seconds)


def release_process_group() -> None:
    """Destroy the default process group if ``distributed_context`` initialised it (a caller's own is left)."""
    global _initialised_here
    if _initialised_here and dist.is_initialized():
        dist.destroy_process_group()
    _initialised_here = False


@contextmanager
def main_first(context: DistributedContext | None) -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it (e.g. a dataset that rank 0 generates and
    caches, the others then read); a plain block for a single process."""
    if context is None:
        yield
        return
    if not context.is_main:
        dist.barrier(group=context.group)
    yield
    if context.is_main:
        dist.barrier(group=context.group)


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${name} must be an integer (torchrun sets it), got {text!r}") from None
