"""``workbench train --nproc-per-node N ...``: the same training command on N processes, through torch's own
launcher (``python -m torch.distributed.run``, i.e. torchrun) on this machine. Every process runs
``python -m workbench train ...`` with the remaining arguments; ``torchrun`` gives the same thing directly, and
is the way to run on several machines (its ``--nnodes`` and rendezvous options).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from workbench.distributed.context import launched_world_size

NPROC_FLAG = "--nproc-per-node"


def launcher_command(nproc_per_node: int, train_arguments: Sequence[str]) -> list[str]:
    """The torchrun command line: ``--standalone`` (a rendezvous on a free local port), N processes, each
    ``python -m workbench train`` with ``train_arguments``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"{NPROC_FLAG}={nproc_per_node}",
        "-m",
        "workbench",
        "train",
        *train_arguments,
    ]


def launch_training(nproc_per_node: int, train_arguments: Sequence[str]) -> int:
    """Run the training command on ``nproc_per_node`` processes and wait; returns torchrun's exit status.

    Raises:
        ValueError: naming ``--nproc-per-node`` when it is below 1, or when this process already is one of a
            launched run (torchrun inside torchrun).
    """
    if nproc_per_node < 1:
        raise ValueError(f"{NPROC_FLAG} must be >= 1 (processes on this machine), got {nproc_per_node}")
    if launched_world_size() > 1:
        raise ValueError(f"{NPROC_FLAG} starts processes, but this already is one of {launched_world_size()}")
    return subprocess.call(launcher_command(nproc_per_node, train_arguments))


def without_launcher_flag(arguments: Sequence[str]) -> list[str]:
    """``arguments`` less ``--nproc-per-node N`` / ``--nproc-per-node=N`` (what each process is given)."""
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == NPROC_FLAG:
            skip = True
        elif not argument.startswith(NPROC_FLAG + "="):
            kept.append(argument)
    return kept
