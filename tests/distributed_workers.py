"""What the distributed tests run in each of their 2 gloo processes (spawned with torch.multiprocessing), and the
shared tiny problem: a float64 MLP without BatchNorm on 4 fixed batches of 8 samples.

Each function takes the rank first (as ``torch.multiprocessing.start_processes`` calls it), joins the group on
``port`` and writes what it measured under ``output`` as ``<name>-rank<r>.pt``.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from workbench.curvature import HessianOperator, hessian_trace, spectral_density, top_eigenpairs
from workbench.distributed.passes import ReplicaLostError
from workbench.params import flatten
from workbench.train import TrainConfig, Trainer, TrainEvent

WORLD_SIZE = 2
STEPS = 6
SHARPNESS_OPTIMIZERS = {"sam": {}, "eigensam": {"freq": 2}, "xsam": {"freq": 2}}
BASE = TrainConfig(
    optimizer="sam",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-3,
    steps=STEPS,
    probe_every=None,
    probe_batch_size=16,
    device="cpu",
    rho=0.05,
)
#: The run the kill test interrupts and resumes, and its uninterrupted reference.
RESUMED = BASE.replace(optimizer="eigensam", freq=2, steps=10, checkpoint_every=2, eval_every=2)
KILL_AT_STEP = 5


def tiny_model() -> nn.Module:
    """5 → 6 → 3, tanh, float64; the same weights in every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """4 batches of 8 samples (float64 inputs, 3 classes)."""
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 5, generator=generator, dtype=torch.float64), torch.arange(8) % 3) for _ in range(4)]


def operator_data() -> tuple[torch.Tensor, torch.Tensor]:
    """16 samples the curvature test shards unequally: rank 0 holds the first 7, rank 1 the other 9."""
    generator = torch.Generator().manual_seed(2)
    return torch.randn(16, 5, generator=generator, dtype=torch.float64), torch.arange(16) % 3


def training_configs() -> dict[str, TrainConfig]:
    """The runs compared with one process: every sharpness-aware optimizer with each sync; SAM with probes."""
    configs = {
        f"{name}-{sync}": BASE.replace(optimizer=name, perturbation_sync=sync, **options)
        for name, options in SHARPNESS_OPTIMIZERS.items()
        for sync in ("global", "local")
    }
    configs["sam-probed"] = BASE.replace(optimizer="sam", perturbation_sync="global", probe_every=3)
    configs["resumed-reference"] = RESUMED
    return configs


def measured(trainer: Trainer) -> dict[str, object]:
    """What a test compares: the weights, the tracked eigenvector, the logged history and all-reduce counts."""
    tracker = trainer.optimizer.tracker
    return {
        "params": flatten([param.detach() for param in trainer.model.parameters()]),
        "vector": None if tracker is None or tracker.vector is None else tracker.vector.clone(),
        "products": 0 if tracker is None else tracker.num_hvps,
        "history": trainer.history.to_frame(),
    }


def train_scenarios(rank: int, port: int, output: str) -> None:
    """Train every run of ``training_configs`` and measure the curvature of a sharded probe set."""
    _join(rank, port)
    for name, config in training_configs().items():
        trainer = Trainer(config, model=tiny_model(), train_data=batches())
        trainer.run()
        torch.save(measured(trainer), Path(output) / f"{name}-rank{rank}.pt")
    inputs, targets = operator_data()
    shard = slice(0, 7) if rank == 0 else slice(7, 16)
    model = tiny_model()
    op = HessianOperator(model, F.cross_entropy, (inputs[shard], targets[shard]), process_group=dist.group.WORLD)
    eigen = top_eigenpairs(op, k=3, tol=1e-10, max_iter=200)
    trace = hessian_trace(op, num_samples=30, seed=1)
    density = spectral_density(op, num_runs=2, lanczos_steps=10, seed=3)
    curvature = {
        "eigenvalues": eigen.eigenvalues,
        "trace": trace.estimate,
        "density": torch.as_tensor(density.density),
        "gradient": op.gradient(),
    }
    torch.save(curvature, Path(output) / f"curvature-rank{rank}.pt")
    dist.destroy_process_group()


def killed_run(rank: int, port: int, folder: str) -> None:
    """``RESUMED`` into ``folder``, rank 1 killing itself (SIGKILL) after step ``KILL_AT_STEP``; rank 0 writes
    the error it stops with to ``error-rank0.txt`` beside the folder and exits with status 3."""
    _join(rank, port)

    def kill(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == KILL_AT_STEP:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = Trainer(RESUMED, model=tiny_model(), train_data=batches(), run_dir=folder, callbacks=[kill] * rank)
    try:
        trainer.run()
    except ReplicaLostError as error:
        (Path(folder).parent / f"error-rank{rank}.txt").write_text(str(error))
        os._exit(3)  # the group is broken: no orderly shutdown
    os._exit(0)


def resumed_run(rank: int, port: int, folder: str, output: str) -> None:
    """Continue the run in ``folder`` from its checkpoint to the end; save what it measured."""
    _join(rank, port)
    checkpoint = Path(folder) / "checkpoint.pt"
    trainer = Trainer.from_checkpoint(checkpoint, run_dir=folder, model=tiny_model(), train_data=batches())
    resumed_at = trainer.step
    trainer.run()
    torch.save({**measured(trainer), "resumed_at": resumed_at}, Path(output) / f"resumed-rank{rank}.pt")
    dist.destroy_process_group()


def _join(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60)
    )
