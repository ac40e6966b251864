"""Loss at many parameter points, one point at a time, on a private copy of the model: eagerly or compiled.

``PointModel`` is an eval-mode copy of a model (made once per model and kept in a per-process cache) whose
perturbed parameters are overwritten in place for each point, so a point costs one plain evaluation of the loss
``loss(copy, batch)`` (a ``workbench.losses.BatchLoss``, any batch structure): no re-parametrisation as
``torch.func.functional_call`` does, and (for images on a CPU) convolutions in channels-last layout, which avoids
PyTorch's slow NCHW max-pooling. The user's model is never touched. Its compiled loss (``torch.compile``) is cached
with it per loss function, so a second slice of the same model and loss does not compile again.

``pointwise_losses`` chooses eager or compiled evaluation when not told: it times eager points and compiles when
the remaining points would take longer eagerly than ``COMPILE_PAYS_SECONDS`` (a compilation cost 4-17 CPU seconds
on the benchmark CPU and then ran 3-4× faster per point than the eager copy, benchmarks/RESULTS.md), or
``CACHED_COMPILE_PAYS_SECONDS`` when a compiled forward is already cached; after compiling it times compiled
points and falls back to eager evaluation if they are not faster. The timings stay with the private copy for the
next slice of the same model.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import torch

from workbench.batching import describe, map_tensors, tensors_of
from workbench.inputs import Batch, check_scalar_loss
from workbench.losses import BatchLoss, LossFn, as_batch_loss
from workbench.params import unflatten

#: Compile when the points still to evaluate would take at least this long eagerly (seconds). A compilation took
#: 4-16 s on the benchmark CPU and then evaluated points 3-6× faster, so it pays from about 20 s of eager work.
COMPILE_PAYS_SECONDS = 20.0
#: The same threshold when this model's compiled forward is already cached (no compilation to pay).
CACHED_COMPILE_PAYS_SECONDS = 1.0

#: batch -> (loss, fraction correct or None) of the private copy at its current parameters.
PointMetrics = Callable[[Any], tuple[torch.Tensor, torch.Tensor | None]]
#: What the compiled losses and the timings of a ``PointModel`` are cached under: ``(type(loss), loss.fn, accuracy)``,
#: so that a new wrapper of the same function (``as_batch_loss`` makes one per call) finds them again.
LossKey = tuple[type, Hashable, bool]


class PointModel:
    """A private eval-mode copy of ``model`` whose parameters ``names`` are overwritten point by point.

    Args:
        model: the user's model (copied with ``copy.deepcopy``; never modified).
        names: the qualified names (as ``model.named_parameters()`` gives them) of the parameters a point sets, in
            the order of its flat vector.
        channels_last: convert the copy to channels-last layout (``prepare`` converts the batch's 4-D tensors).
    """

    def __init__(self, model: torch.nn.Module, names: Sequence[str], channels_last: bool) -> None:
        self.source = weakref.ref(model)
        self.copy = copy.deepcopy(model).eval().requires_grad_(False)
        if channels_last:
            self.copy = self.copy.to(memory_format=torch.channels_last)
        self.names = tuple(names)
        self.channels_last = channels_last
        named = dict(self.copy.named_parameters())
        self.targets = [named[name] for name in self.names]
        first = self.targets[0]
        # One flat buffer holds a point; contiguous parameters become views of it (loading a point is one copy),
        # the others (channels-last convolution weights) are copied from their slice after it.
        self.flat = torch.empty(sum(p.numel() for p in self.targets), device=first.device, dtype=first.dtype)
        self._copied: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        with torch.no_grad():
            for param, view in zip(self.targets, unflatten(self.flat, self.targets), strict=True):
                view.copy_(param)
                if param.is_contiguous():
                    param.data = view
                else:
                    self._copied[0].append(param)
                    self._copied[1].append(view)
        self.lock = threading.Lock()
        self._compiled: dict[LossKey, PointMetrics] = {}
        #: ``loss_key(loss, accuracy)`` -> seconds per point measured by the automatic choice: "eager", "compiled".
        self.timings: dict[LossKey, dict[str, float]] = {}

    def matches(self, model: torch.nn.Module, names: Sequence[str], channels_last: bool) -> bool:
        """Whether this copy still has ``model``'s structure (parameter and buffer names and shapes)."""
        if self.source() is not model or self.names != tuple(names) or self.channels_last != channels_last:
            return False
        ours = {name: value.shape for name, value in self.copy.state_dict(keep_vars=True).items()}
        theirs = {name: value.shape for name, value in model.state_dict(keep_vars=True).items()}
        return ours == theirs

    def sync(self) -> None:
        """Copy every parameter and buffer value of the user's model into the copy (a point's parameters then
        replace the perturbed ones)."""
        model = self.source()
        if model is None:
            raise RuntimeError("the model this copy was made from no longer exists")
        theirs = model.state_dict(keep_vars=True)
        ours = self.copy.state_dict(keep_vars=True)
        with torch.no_grad():
            for name, value in ours.items():
                value.copy_(theirs[name].detach())

    def load(self, point: torch.Tensor) -> None:
        """Set the perturbed parameters to the flat ``point`` ``(n,)``."""
        self.flat.copy_(point)
        if self._copied[0]:
            torch._foreach_copy_(*self._copied)

    def metrics(self, loss: LossFn, accuracy: bool, *, compiled: bool) -> PointMetrics:
        """``loss(copy, batch)`` (with ``accuracy``: ``loss.loss_and_accuracy(copy, batch)``, the accuracy None when
        the loss cannot score its outputs) at the copy's current parameters, for a batch from ``prepare``; eager or
        compiled (cached under ``loss_key``). ``loss``: a ``BatchLoss`` or an (outputs, targets) function."""
        eager = self._eager_metrics(as_batch_loss(loss), accuracy)
        if not compiled:
            return eager
        key = loss_key(loss, accuracy)
        if key not in self._compiled:
            self._compiled[key] = torch.compile(eager, dynamic=False)
        return self._compiled[key]

    def has_compiled(self, loss: LossFn, accuracy: bool) -> bool:
        """Whether a compiled loss for this loss function and accuracy flag is cached."""
        return loss_key(loss, accuracy) in self._compiled

    def prepare(self, batch: Any) -> Any:
        """The batch in the layout the copy expects: its 4-D tensors (images) channels-last when the copy is."""
        if not self.channels_last:
            return batch
        return map_tensors(
            batch, lambda tensor: tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor
        )

    def _eager_metrics(self, loss: BatchLoss, accuracy: bool) -> PointMetrics:
        network = self.copy

        def metrics(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
            if not accuracy:
                return loss(network, batch), None
            return loss.loss_and_accuracy(network, batch)

        return metrics


def loss_key(loss: LossFn, accuracy: bool) -> LossKey:
    """``(type(loss), loss.fn, accuracy)`` of the loss as a ``BatchLoss`` (an (outputs, targets) function is a
    ``LossOfOutputs``); an unhashable ``fn`` is stood for by the wrapper itself."""
    loss = as_batch_loss(loss)
    fn = loss.fn
    try:
        hash(fn)
    except TypeError:
        fn = loss
    return type(loss), fn, accuracy


_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, PointModel] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def point_model_for(model: torch.nn.Module, names: Sequence[str], batch: Any) -> PointModel | None:
    """The cached private copy of ``model`` (made or remade when its structure changed); None when the model cannot
    be deep-copied (then the caller evaluates functionally). ``pointwise_losses`` syncs its values first.

    ``names`` are the model's own parameter names (``named_parameters()``); ``batch`` is one batch as the data
    yields it: a 4-D tensor in it (images) on a CPU model makes the copy channels-last.
    """
    on_cpu = model.get_parameter(names[0]).device.type == "cpu"
    channels_last = on_cpu and any(tensor.dim() == 4 for tensor in tensors_of(batch))
    with _CACHE_LOCK:
        cached = _CACHE.get(model)
        if cached is None or not cached.matches(model, names, channels_last):
            try:
                cached = PointModel(model, names, channels_last)
            except (TypeError, RuntimeError, copy.Error):
                return None
            _CACHE[model] = cached
    return cached


def pointwise_losses(
    point_model: PointModel,
    points: Iterable[torch.Tensor],
    batches: Sequence[Batch],
    loss: LossFn,
    *,
    accuracy: bool,
    torch_compile: bool | None,
    num_points: int | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss and fraction correct (size-weighted over ``batches``) at every flat point ``(n,)`` of ``points``.

    Args:
        point_model: the private copy (from ``point_model_for``), synced with the model and used under its lock.
        points: flat parameter vectors θ + δ, one per point.
        batches: the data, as ``workbench.inputs.as_batches`` gives it (any batch structure ``loss`` takes).
        loss: a ``BatchLoss`` (or an (outputs, targets) function), evaluated as ``loss(copy, batch)``, with
            ``accuracy`` as ``loss.loss_and_accuracy(copy, batch)``.
        torch_compile: True compiles, False never does, None chooses (see the module docstring).
        num_points: how many points ``points`` holds, for the automatic choice (None: never compile by itself).

    Returns:
        ``(losses, accuracies)``: float64 CPU tensors ``(m,)``, ``accuracies`` None unless ``accuracy``.

    Raises:
        ValueError: when ``accuracy`` is asked for but the loss cannot score its outputs (no class scores and
            integer targets), or when the loss is not a finite-shaped scalar.
    """
    device = point_model.targets[0].device
    on_device = [(batch.weight, point_model.prepare(batch.on(device))) for batch in batches]
    losses: list[torch.Tensor] = []
    corrects: list[torch.Tensor] = []
    with point_model.lock, torch.no_grad():
        point_model.sync()
        eager = point_model.metrics(loss, accuracy, compiled=False)
        choice = _Choice(point_model, loss, accuracy, torch_compile, num_points)
        for index, point in enumerate(points):
            point_model.load(point)
            metrics = choice.metrics(index, eager)
            start = time.perf_counter()
            value, correct = _evaluate(metrics, on_device, accuracy, index == 0)
            choice.observe(index, time.perf_counter() - start)
            losses.append(value)
            if correct is not None:
                corrects.append(correct)
    stacked_losses = torch.stack(losses).double().cpu() if losses else torch.zeros(0, dtype=torch.float64)
    if not accuracy:
        return stacked_losses, None
    return stacked_losses, torch.stack(corrects).double().cpu() if corrects else torch.zeros(0, dtype=torch.float64)


def _evaluate(
    metrics: PointMetrics, batches: list[tuple[float, Any]], accuracy: bool, check: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The size-weighted loss (and accuracy) of one point over ``batches`` (weight, prepared batch); ``check``
    validates what the loss returns (done at the first point)."""
    if len(batches) == 1:  # the common case: no weighting
        return _checked(metrics, batches[0][1], accuracy, check)
    total_loss: torch.Tensor | float = 0.0
    total_correct: torch.Tensor | float = 0.0
    for weight, batch in batches:
        loss, correct = _checked(metrics, batch, accuracy, check)
        total_loss = total_loss + weight * loss
        if correct is not None:
            total_correct = total_correct + weight * correct
    return torch.as_tensor(total_loss).reshape(()), torch.as_tensor(total_correct).reshape(()) if accuracy else None


def _checked(
    metrics: PointMetrics, batch: Any, accuracy: bool, check: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    loss, correct = metrics(batch)
    if check:
        check_scalar_loss(loss)
        if accuracy and correct is None:
            raise ValueError(
                "accuracy=True needs an (outputs, targets) loss with class scores (batch, classes, ...) and "
                f"integer targets of matching shape; got {describe(batch)}"
            )
    return loss.reshape(()), None if correct is None else correct.to(loss.dtype).reshape(())


class _Choice:
    """Eager or compiled, per point: the user's choice, or the automatic rule of the module docstring.

    Automatic (on a CPU; elsewhere eager unless told, as asynchronous GPU timings need synchronisation and the
    rule was not measured there): points 0-2 run eagerly, 1 and 2 timed (the faster counts: load only slows a
    point down); if the remaining points would take long enough eagerly, point 3 compiles and runs, points 4 and 5
    run compiled and timed, and evaluation stays compiled only if that was faster. Both timings are kept with the
    private copy, so the next slice of the same model starts compiled at once, or never compiles, without timing
    again.
    """

    def __init__(
        self,
        point_model: PointModel,
        loss: LossFn,
        accuracy: bool,
        torch_compile: bool | None,
        num_points: int | None,
    ) -> None:
        self.point_model, self.loss, self.accuracy = point_model, loss, accuracy
        on_cpu = point_model.targets[0].device.type == "cpu"
        self.fixed = torch_compile if torch_compile is not None or on_cpu else False  # timed on a CPU only
        self.num_points = num_points
        self.timings = point_model.timings.setdefault(loss_key(loss, accuracy), {})
        self.use_compiled = bool(torch_compile)
        if self.fixed is None and self._decided():
            self.use_compiled = self.timings["compiled"] < self.timings["eager"] and self._pays(0)
            self.fixed = self.use_compiled  # nothing left to time
        self.compiled = point_model.metrics(loss, accuracy, compiled=True) if self.use_compiled else None

    def metrics(self, index: int, eager: PointMetrics) -> PointMetrics:
        if self.fixed is None and index == 3 and self._pays(3):
            self.compiled = self.point_model.metrics(self.loss, self.accuracy, compiled=True)
            self.use_compiled = True
        return self.compiled if self.use_compiled and self.compiled is not None else eager

    def observe(self, index: int, seconds: float) -> None:
        if self.fixed is not None:
            return
        kind = "eager" if index in (1, 2) else "compiled" if index in (4, 5) and self.use_compiled else None
        if kind is not None:
            self.timings[kind] = min(seconds, self.timings.get(kind, seconds))
        if index == 5 and self.use_compiled and self.timings["compiled"] >= self.timings["eager"]:
            self.use_compiled = False  # compiled is not faster here: back to eager for the rest

    def _decided(self) -> bool:
        return "eager" in self.timings and "compiled" in self.timings

    def _pays(self, done: int) -> bool:
        """Whether the points after the first ``done`` would take long enough eagerly to repay compiling."""
        if self.num_points is None or "eager" not in self.timings:
            return False
        cached = self.point_model.has_compiled(self.loss, self.accuracy)
        threshold = CACHED_COMPILE_PAYS_SECONDS if cached else COMPILE_PAYS_SECONDS
        return self.timings["eager"] * (self.num_points - done) >= threshold
