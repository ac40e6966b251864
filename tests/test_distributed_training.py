"""Training and curvature on 2 gloo processes (CPU) against one process, and a run that loses a process.

"global" perturbation sync must give what one process gives on the whole batch, "local" what one process gives
with m = 2, both to 1e-10 in float64 (no BatchNorm); the tracked eigenvector must be the same bits on both ranks;
a sharded HessianOperator must give the eigenvalues, trace and density of the union of its shards; a killed rank
must stop the other with a clear error, and the run must resume exactly from its last checkpoint.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from tests import distributed_workers as workers
from workbench.cli import main
from workbench.curvature import HessianOperator, hessian_trace, spectral_density, top_eigenpairs
from workbench.distributed.launch import launcher_command, without_launcher_flag
from workbench.distributed.passes import StepPasses
from workbench.losses import CROSS_ENTROPY
from workbench.optim.tracker import DEFAULT_PRODUCTS, MIN_RITZ_PRODUCTS
from workbench.params import flatten
from workbench.train import TrainConfig, Trainer
from workbench.train.optimizers import build_optimizer


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every scenario of ``workers.train_scenarios``, run once on 2 processes; the folder of their results."""
    output = tmp_path_factory.mktemp("two-ranks")
    mp.start_processes(workers.train_scenarios, args=(_free_port(), str(output)), nprocs=2, start_method="spawn")
    return output


def _single(config: TrainConfig) -> dict[str, object]:
    trainer = Trainer(config, model=workers.tiny_model(), train_data=workers.batches())
    trainer.run()
    return workers.measured(trainer)


def _ranks(folder: Path, name: str) -> list[dict[str, object]]:
    return [torch.load(folder / f"{name}-rank{rank}.pt", weights_only=False) for rank in range(2)]


@pytest.mark.parametrize("optimizer", sorted(workers.SHARPNESS_OPTIMIZERS))
def test_global_sync_equals_one_process_on_the_whole_batch(two_ranks, optimizer):
    ranks = _ranks(two_ranks, f"{optimizer}-global")
    single = _single(workers.BASE.replace(optimizer=optimizer, **workers.SHARPNESS_OPTIMIZERS[optimizer]))
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])  # the replicas stay identical, bit for bit
    assert (ranks[0]["params"] - single["params"]).abs().max() < 1e-10
    assert not torch.equal(single["params"], flatten(list(workers.tiny_model().parameters())))  # it trained
    if optimizer != "sam":
        assert torch.equal(ranks[0]["vector"], ranks[1]["vector"])  # v, its sign included, the same bits
        assert (ranks[0]["vector"] - single["vector"]).abs().max() < 1e-10
    history = ranks[0]["history"].pivot_table(index="step", columns="metric", values="value")
    assert set(history.comm_gradient_syncs.dropna()) == {2.0}  # the first gradient and the second
    refreshes = history.comm_hvp_allreduces.dropna()
    assert refreshes.sum() == ranks[0]["products"] == ranks[1]["products"]  # one all-reduce per product
    allowed = {0.0} | {float(count) for count in range(MIN_RITZ_PRODUCTS, DEFAULT_PRODUCTS["ritz"] + 1)}
    assert set(refreshes) <= ({0.0} if optimizer == "sam" else allowed)
    assert bool(refreshes.sum() == 0) == (optimizer == "sam")
    single_loss = _series(single["history"], "train_loss")
    distributed_loss = _series(ranks[0]["history"], "train_loss")
    assert abs(single_loss - distributed_loss).max() < 1e-10  # the logged loss is the whole batch's


@pytest.mark.parametrize("optimizer", sorted(workers.SHARPNESS_OPTIMIZERS))
def test_local_sync_equals_one_process_with_m_2(two_ranks, optimizer):
    ranks = _ranks(two_ranks, f"{optimizer}-local")
    single = _single(workers.BASE.replace(optimizer=optimizer, m=2, **workers.SHARPNESS_OPTIMIZERS[optimizer]))
    whole = _single(workers.BASE.replace(optimizer=optimizer, **workers.SHARPNESS_OPTIMIZERS[optimizer]))
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    assert (ranks[0]["params"] - single["params"]).abs().max() < 1e-10
    assert (ranks[0]["params"] - whole["params"]).abs().max() > 1e-6  # m = 2 is not the whole batch's ε
    if optimizer != "sam":
        assert torch.equal(ranks[0]["vector"], ranks[1]["vector"])
    history = ranks[0]["history"].pivot_table(index="step", columns="metric", values="value")
    assert set(history.comm_gradient_syncs.dropna()) == {1.0}  # the first pass stays inside no_sync


def test_probes_across_ranks_measure_the_whole_probe_batch(two_ranks):
    ranks = _ranks(two_ranks, "sam-probed")
    single = _single(workers.training_configs()["sam-probed"])
    for metric in ("lambda_1", "trace", "probe_loss_gradient_norm"):
        distributed = _series(ranks[0]["history"], metric)
        alone = _series(single["history"], metric)
        assert len(distributed) == 2 and abs(distributed - alone).max() < 1e-8 * abs(alone).max()


def test_a_sharded_hessian_operator_is_the_hessian_of_the_union(two_ranks):
    ranks = [torch.load(two_ranks / f"curvature-rank{rank}.pt", weights_only=False) for rank in range(2)]
    op = HessianOperator(workers.tiny_model(), F.cross_entropy, workers.operator_data())
    eigen = top_eigenpairs(op, k=3, tol=1e-10, max_iter=200)
    trace = hessian_trace(op, num_samples=30, seed=1)
    density = spectral_density(op, num_runs=2, lanczos_steps=10, seed=3)
    for rank in ranks:  # the shards hold 7 and 9 samples: weighted by their sizes
        assert torch.allclose(rank["eigenvalues"], eigen.eigenvalues, rtol=1e-10, atol=1e-12)
        assert rank["trace"] == pytest.approx(trace.estimate, rel=1e-10)
        assert torch.allclose(rank["gradient"], op.gradient(), rtol=1e-10, atol=1e-13)
        assert torch.allclose(rank["density"], torch.as_tensor(density.density), rtol=1e-6, atol=1e-9)
    assert torch.equal(ranks[0]["eigenvalues"], ranks[1]["eigenvalues"])


def test_m_sharpness_on_one_device_averages_each_chunks_adversarial_gradient():
    """One SAM step with m = 2 against the formula: θ − lr·Σ_i w_i ∇L_i(θ + ρ ĝ_i), g_i each chunk's gradient."""
    config = TrainConfig(optimizer="sam", rho=0.1, lr=0.5, momentum=0.0, weight_decay=0.0, m=2, device="cpu")
    model = workers.tiny_model()
    batch = workers.batches()[0]
    optimizer = build_optimizer(config, model, steps_per_epoch=1)
    weights = flatten([param.detach() for param in model.parameters()])
    expected = torch.zeros_like(weights)
    for chunk in (slice(0, 4), slice(4, 8)):
        chunk_batch = (batch[0][chunk], batch[1][chunk])
        gradient = _gradient(model, weights, chunk_batch)
        expected += 0.5 * _gradient(model, weights + 0.1 * gradient / gradient.norm(), chunk_batch)
    passes = StepPasses(model, CROSS_ENTROPY, nullcontext, m=2)
    passes.run(optimizer, batch)
    after = flatten([param.detach() for param in model.parameters()])
    assert (after - (weights - 0.5 * expected)).abs().max() < 1e-12


def test_configs_that_cannot_work_are_refused_with_the_option_named():
    with pytest.raises(ValueError, match="m=2 cuts the batch into chunks with their own ε; 'sgd' has none"):
        TrainConfig(optimizer="sgd", m=2)
    with pytest.raises(ValueError, match="needs perturbation_sync='local'"):
        TrainConfig(optimizer="sam", m=2, perturbation_sync="global")
    with pytest.raises(ValueError, match="perturbation_sync must be one of"):
        TrainConfig(optimizer="sam", perturbation_sync="everywhere")


def test_a_killed_rank_stops_the_other_with_a_clear_error_and_the_run_resumes_exactly(two_ranks, tmp_path):
    folder = tmp_path / "run"
    context = mp.start_processes(
        workers.killed_run, args=(_free_port(), str(folder)), nprocs=2, start_method="spawn", join=False
    )
    killed, survivor = context.processes[1], context.processes[0]
    killed.join(timeout=120)
    assert killed.exitcode == -9
    died = time.monotonic()
    survivor.join(timeout=30)
    assert survivor.exitcode == 3 and time.monotonic() - died < 30  # stopped by itself, promptly
    error = (tmp_path / "error-rank0.txt").read_text()
    assert "rank 0 of 2: a collective operation failed during step 5" in error
    assert "resume from it on 2 processes" in error
    saved = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 4 and saved["world_size"] == 2

    with pytest.raises(ValueError, match="taken by a run on 2 process"):  # one process cannot resume it
        Trainer.from_checkpoint(folder / "checkpoint.pt", model=workers.tiny_model(), train_data=workers.batches())
    output = tmp_path / "resumed"
    output.mkdir()
    mp.start_processes(
        workers.resumed_run, args=(_free_port(), str(folder), str(output)), nprocs=2, start_method="spawn"
    )
    resumed = _ranks(output, "resumed")
    reference = _ranks(two_ranks, "resumed-reference")
    assert resumed[0]["resumed_at"] == 4
    assert torch.equal(resumed[0]["params"], reference[0]["params"])  # exact: the same bits as never stopped
    assert torch.equal(resumed[1]["params"], reference[0]["params"])
    history = pd.read_csv(folder / "history.csv")
    assert history.step.max() == 10 and "comm_allreduces" in set(history.metric)
    summary = (folder / "summary.json").read_text()
    assert '"world_size": 2' in summary and '"status": "finished"' in summary


def _gradient(model: torch.nn.Module, weights: torch.Tensor, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """∇L at ``weights`` on ``batch`` (functional, the model untouched)."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [param.shape for param in model.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, [shape.numel() for shape in shapes])
        values = {name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes, strict=True)}
        return F.cross_entropy(torch.func.functional_call(model, values, (batch[0],)), batch[1])

    return torch.func.grad(loss)(weights)


def _series(history: pd.DataFrame, metric: str):
    return history[history.metric == metric].value.to_numpy()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_train_command_on_two_processes_through_torchrun(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "workbench", "train", "--nproc-per-node", "2", "--dataset", "blobs"]
    command += ["--model", "mlp", "--optimizer", "eigensam", "--freq", "2", "--steps", "6", "--batch-size", "32"]
    command += ["--probe-every", "3", "--probe-batch-size", "64", "--trace-samples", "6", "--perturbation-sync"]
    command += ["global", "--run-dir", str(run_dir), "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("finished: completed 6 steps") == 1  # rank 0 alone reports
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["config"]["perturbation_sync"] == "global"
    history = pd.read_csv(run_dir / "history.csv")
    assert set(history[history.metric == "comm_gradient_syncs"].value) == {2.0}
    assert (history[history.metric == "lambda_1"].value > 0).all() and (run_dir / "report.html").is_file()


def test_the_launcher_runs_torchrun_with_the_command_less_its_own_flag():
    arguments = ["--steps", "5", "--nproc-per-node", "4", "--run-dir", "x", "--nproc-per-node=4"]
    assert without_launcher_flag(arguments) == ["--steps", "5", "--run-dir", "x"]
    command = launcher_command(4, ["--steps", "5"])
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m", "workbench",
                           "train", "--steps", "5"]  # fmt: skip
    assert main(["train", "--nproc-per-node", "0", "--steps", "1"]) == 2
