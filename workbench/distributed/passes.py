"""The forward-backward passes of one training step on this process: micro-batches, m-sharpness, and DDP.

``StepPasses.run(optimizer, batch)`` hands the optimizer the closures it steps with (``optimizer.step(closure,
refresh_closure=...)``, the LBFGS protocol every workbench optimizer follows). It is the training engine's one
step path, for one process and for many:

* ``micro_batches``: each pass accumulates its gradient over parts of the batch (each part's mean loss weighted
  by its share of the samples), for memory; the gradient is that of the whole batch.
* ``m`` (m-sharpness, one device): the batch is cut into m chunks and each chunk ascends with its own
  perturbation: ε_i = ``optimizer.perturbation(g_i, v)`` from the chunk's gradient g_i = ∇L_i(θ), and the step
  descends along the chunks' adversarial gradients averaged, Σ_i w_i ∇L_i(θ + ε_i) (w_i: the chunk's share of the
  samples). The eigenvector refresh, the record's g (Σ_i w_i g_i) and the optimizer's descent rule see the whole
  batch; the record's ε is the one g itself would give (the ε_i are not recorded).
* several processes (``replicas``, a ``Replicas``): the training passes run through DistributedDataParallel.
  ``perturbation_sync="local"``: the whole first pass, forward included, runs inside ``no_sync`` (a forward outside
  it would arm DDP's all-reduce for the next backward), so each process perturbs with the gradient of its own
  shard: m-sharpness with one chunk per process, and the run on N processes equals the single-process run with
  ``m = N``. ``"global"``: the first pass is an ordinary synchronised pass, one ε from the whole batch's gradient,
  and the run equals the single-process run on the whole batch. The second pass is always an ordinary
  synchronised pass. The eigenvector refresh runs on the unwrapped module (DDP does not support double backward)
  and its Hessian-vector products are averaged across the processes by hand (``RankAveragedOperator``): one
  all-reduce per product, the same v on every process. After the step one small all-reduce averages the loss
  (so every process logs, and judges divergence by, the same number) and the model's floating-point buffers
  (BatchNorm statistics, as the first pass left them on each shard), which keeps the processes identical.

Every pass of a chunk or micro-batch but the last runs inside ``no_sync`` and the last is synchronised: DDP
all-reduces the accumulated gradient once per synchronised pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from workbench.batching import batch_size, split
from workbench.distributed.averaging import CollectiveCounter, RankAverage, RankAveragedOperator
from workbench.distributed.context import DistributedContext
from workbench.losses import BatchLoss
from workbench.optim.sharpness_aware import SharpnessAware
from workbench.optim.wrapped import WrappedOptimizer
from workbench.params import flatten, unflatten
from workbench.train.config import TrainConfig

Part = tuple[Any, float | None]  # a piece of a batch and its share of the samples (None: the whole batch)


class Replicas:
    """This process's replica of the model in a run on several processes: the DDP wrapper its training passes go
    through, how its first pass synchronises, and the count of its all-reduces.

    Args:
        model: the module (on this process's device); it stays the one evaluated, probed and checkpointed.
        context: this process's ``DistributedContext``.
        config: the run's config (``perturbation_sync``, ``amp``, ``orientation``).
        optimizer: the run's optimizer; a sharpness-aware one gets its eigenvector refresh averaged across ranks.

    Raises:
        ValueError: for a combination the processes could not keep identical: X-SAM with
            ``orientation="along_gradient"`` or ``amp="fp16"`` under ``perturbation_sync="local"`` (both read the
            first pass's gradient, which local sync keeps per process).
    """

    def __init__(
        self, model: torch.nn.Module, context: DistributedContext, config: TrainConfig, optimizer: WrappedOptimizer
    ) -> None:
        self.context = context
        self.sync = config.perturbation_sync
        self.counter = CollectiveCounter()
        sharpness = isinstance(optimizer, SharpnessAware)
        if sharpness and self.sync == "local":
            _check_local_sync(config)
        device = next(model.parameters()).device
        self.module = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            process_group=context.group,
            **_NO_FORWARD_BUFFER_SYNC,  # buffers are averaged after each step instead (see average_state)
        )
        self.module.register_comm_hook(_HookState(context.group, self.counter), _counting_allreduce)
        if sharpness:
            average = RankAverage(context.group, counter=self.counter, kind="hvp")
            optimizer.hessian_hook = lambda op: RankAveragedOperator(op, average)
        self.model = model

    def synchronised(self, synchronise: bool) -> AbstractContextManager:
        """The context of one forward-backward pass: DDP's ``no_sync`` unless ``synchronise``."""
        return nullcontext() if synchronise else self.module.no_sync()

    def average_state(self, loss: torch.Tensor) -> torch.Tensor:
        """Average the step's loss and the model's floating-point buffers over the processes (one all-reduce);
        the buffers are overwritten with the average; returns the averaged loss (0-dim, float64)."""
        buffers = [buffer for buffer in self.model.buffers() if buffer.is_floating_point()]
        flat = torch.cat(
            [loss.detach().reshape(1).to(torch.float64), *(buffer.detach().reshape(-1).double() for buffer in buffers)]
        )
        flat /= self.context.world_size
        dist.all_reduce(flat, group=self.context.group)
        self.counter.add("state", flat)
        with torch.no_grad():
            for buffer, value in zip(buffers, unflatten(flat[1:], buffers), strict=True):
                buffer.copy_(value)
        return flat[0]


class StepPasses:
    """The passes of one optimizer step (see the module docstring).

    Args:
        model: the module trained (unwrapped).
        loss_fn: ``loss_fn(model, batch)`` → the mean loss of the batch.
        autocast: the mixed-precision context factory of the training passes (the refresh runs in float32).
        micro_batches: parts each chunk's passes accumulate over, >= 1.
        m: chunks with their own perturbation, >= 1 (1: one ε for the batch).
        replicas: this process's ``Replicas`` in a run on several processes, else None.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: BatchLoss,
        autocast: Callable[[], AbstractContextManager],
        *,
        micro_batches: int = 1,
        m: int = 1,
        replicas: Replicas | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.autocast = autocast
        self.micro_batches = micro_batches
        self.m = m
        self.replicas = replicas
        self.collectives: dict[str, float] = {}
        # The first training pass computes the refresh's loss (float32, unscaled, on the model itself, the whole
        # batch): the optimizer may then take the refresh's products from that pass ("Shared first pass"), or,
        # where it cannot, run `closure` itself for the refresh. `_Step.closure` counts its calls, so the step's two
        # passes are then its 2nd and 3rd; that is right only because with m == 1 and no replicas its two branches
        # run the same pass (the conditions below).
        self._first_pass_is_refresh_pass = autocast is nullcontext and m == 1 and replicas is None

    def run(self, optimizer: WrappedOptimizer, batch: Any) -> float:
        """One ``optimizer.step`` on ``batch`` (this process's shard of it); returns the loss at θ (averaged over
        the processes). ``collectives`` then holds the step's all-reduce counts (``comm_*``; empty on one
        process)."""
        before = None if self.replicas is None else self.replicas.counter.totals()
        module = self.model if self.replicas is None else self.replicas.module
        module.train()
        step = _Step(self, optimizer, module, batch)
        refresh = None if self._first_pass_is_refresh_pass else step.refresh_closure
        loss = optimizer.step(step.closure, refresh_closure=refresh)
        loss = torch.as_tensor(loss)
        if self.replicas is not None:
            loss = self.replicas.average_state(loss)
            self.collectives = {f"comm_{name}": value for name, value in self.replicas.counter.since(before).items()}
        return float(loss)

    def accumulate(
        self, module: torch.nn.Module, parts: list[Part], *, precise: bool, synchronise: bool, scaler: Any = None
    ) -> torch.Tensor:
        """Forward and backward over ``parts`` (each loss times its share), gradients accumulating in ``.grad``;
        returns the weighted loss, detached. With ``precise``, float32 without loss scaling (the refresh). Through
        the DDP wrapper, only the last part's pass is synchronised, and only when ``synchronise``."""
        total = None
        for index, (part, share) in enumerate(parts):
            last = index == len(parts) - 1
            wrapped = self.replicas is not None and module is self.replicas.module
            context = self.replicas.synchronised(synchronise and last) if wrapped else nullcontext()
            with context:
                with nullcontext() if precise else self.autocast():
                    loss = self.loss_fn(module, part)
                weighted = loss if share is None else loss * share
                (weighted if precise or scaler is None else scaler.scale(weighted)).backward()
            total = weighted.detach() if total is None else total + weighted.detach()
        return total

    def parts(self, batch: Any, scale: float | None = None) -> list[Part]:
        """``batch`` cut into ``micro_batches`` parts with their shares of its samples (times ``scale``)."""
        if self.micro_batches == 1:
            return [(batch, scale)]
        pieces = split(batch, self.micro_batches)
        size = batch_size(batch)
        return [(piece, batch_size(piece) / size * (1.0 if scale is None else scale)) for piece in pieces]


class _Step:
    """The closures of one step; the optimizer calls ``closure`` once at θ and, if sharpness-aware, once more at
    θ + ε (and ``refresh_closure`` before both when its eigenvector is due)."""

    def __init__(self, passes: StepPasses, optimizer: WrappedOptimizer, module: torch.nn.Module, batch: Any) -> None:
        self.passes = passes
        self.optimizer = optimizer
        self.module = module
        self.batch = batch
        self.sharpness = isinstance(optimizer, SharpnessAware)
        self.params = [param for group in optimizer.param_groups for param in group["params"]]
        chunks = split(batch, passes.m) if passes.m > 1 else [batch]
        size = batch_size(batch)
        self.chunks = [(chunk, batch_size(chunk) / size) for chunk in chunks] if passes.m > 1 else [(batch, None)]
        self.calls = 0
        self.weights: list[torch.Tensor] = []  # θ, kept by the first pass when m > 1
        self.chunk_gradients: list[torch.Tensor] = []  # g_i, flat, when m > 1

    def refresh_closure(self) -> torch.Tensor:
        """The batch's loss in float32, unscaled, on the unwrapped module (its Hessian is the refresh's)."""
        return self.passes.accumulate(self.passes.model, self.passes.parts(self.batch), precise=True, synchronise=False)

    def closure(self) -> torch.Tensor:
        first = self.calls == 0
        self.calls += 1
        return self._at_weights() if first else self._at_perturbed_weights()

    def _synchronise_first_pass(self) -> bool:
        replicas = self.passes.replicas
        return not self.sharpness or (replicas is not None and replicas.sync == "global")

    def _at_weights(self) -> torch.Tensor:
        scaler = self.optimizer.grad_scaler
        if len(self.chunks) == 1:
            parts = self.passes.parts(self.batch)
            return self.passes.accumulate(
                self.module, parts, precise=False, synchronise=self._synchronise_first_pass(), scaler=scaler
            )
        total = None
        for chunk, share in self.chunks:  # m > 1: local sync, each chunk's gradient kept apart
            for param in self.params:
                param.grad = None
            loss = self.passes.accumulate(self.module, self.passes.parts(chunk), precise=False, synchronise=False)
            self.chunk_gradients.append(_flat_gradient(self.params))
            total = loss * share if total is None else total + loss * share
        gradient = sum(share * g for (_, share), g in zip(self.chunks, self.chunk_gradients, strict=True))
        for param, piece in zip(self.params, unflatten(gradient, self.params), strict=True):
            param.grad = piece.clone()
        self.weights = [param.detach().clone() for param in self.params]
        return total

    def _at_perturbed_weights(self) -> torch.Tensor:
        if len(self.chunks) == 1:
            parts = self.passes.parts(self.batch)
            return self.passes.accumulate(
                self.module, parts, precise=False, synchronise=True, scaler=self.optimizer.grad_scaler
            )
        with torch.no_grad(), self._at(self.weights):  # ε_i at θ (ASAM's ε reads |θ|)
            vector = self.optimizer.tracker.vector if self.optimizer.tracker is not None else None
            vector = None if vector is None else vector.to(self.weights[0])
            perturbations = [self.optimizer.perturbation(g, vector) for g in self.chunk_gradients]
        total = None
        for index, ((chunk, share), perturbation) in enumerate(zip(self.chunks, perturbations, strict=True)):
            shifted = [w + e for w, e in zip(self.weights, unflatten(perturbation, self.params), strict=True)]
            with self._at(shifted):
                loss = self.passes.accumulate(
                    self.module,
                    self.passes.parts(chunk, share),
                    precise=False,
                    synchronise=index == len(self.chunks) - 1,
                )
            total = loss if total is None else total + loss
        return total

    @contextmanager
    def _at(self, values: list[torch.Tensor]) -> Iterator[None]:
        """Within the block the parameters hold ``values``; afterwards θ (the optimizer restores θ itself from
        its own copy at ``second_step``, whatever they hold)."""
        with torch.no_grad():
            for param, value in zip(self.params, values, strict=True):
                param.copy_(value)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weight in zip(self.params, self.weights, strict=True):
                    param.copy_(weight)


@contextmanager
def replica_failures(context: DistributedContext | None, step: int) -> Iterator[None]:
    """Turn a failed collective into a ``ReplicaLostError`` that says what happened and what to do."""
    if context is None:
        yield
        return
    try:
        yield
    except Exception as error:
        if not _is_collective_failure(error):
            raise
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReplicaLostError(
            f"rank {context.rank} of {context.world_size}: a collective operation failed during step {step} "
            f"({detail}). Another process of the run has stopped or stopped answering; see its output. The run "
            f"folder keeps everything up to its last checkpoint: resume from it on {context.world_size} processes"
        ) from error


class ReplicaLostError(RuntimeError):
    """Another process of a distributed run stopped (crashed, killed) or stopped answering."""


def _check_local_sync(config: TrainConfig) -> None:
    reason = None
    if config.orientation == "along_gradient":
        reason = "orientation='along_gradient' orients v by the whole batch's gradient g"
    elif config.amp == "fp16":
        reason = "amp='fp16' skips a step whose gradient overflows, a decision all processes must share"
    if reason is not None:
        raise ValueError(
            f"perturbation_sync='local' on several processes: {reason}, but local sync keeps each process's first "
            "gradient its own; use perturbation_sync='global'"
        )


def _flat_gradient(params: list[torch.Tensor]) -> torch.Tensor:
    return flatten([torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in params])


class _HookState:
    """What the counting comm hook needs: the process group and the counter."""

    def __init__(self, group: Any, counter: CollectiveCounter) -> None:
        self.group = group
        self.counter = counter


def _counting_allreduce(state, bucket):  # unannotated: DDP rejects annotations it cannot compare (strings)
    """DDP's default all-reduce of a gradient bucket ``dist.GradBucket`` (averaging), counted; returns its
    ``torch.futures.Future``."""
    state.counter.add("gradients", bucket.buffer())
    if bucket.is_last():
        state.counter.gradient_syncs += 1
    return default_hooks.allreduce_hook(state.group, bucket)


#: DDP's option not to broadcast rank 0's buffers at every forward (named ``broadcast_buffers`` before torch 2.13).
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)

_COLLECTIVE_MARKERS = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "timed out", "peer")


def _is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from a collective whose peers went away (torch raises these as DistError or, from
    gloo, as a RuntimeError naming the transport)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(marker in text for marker in _COLLECTIVE_MARKERS)
