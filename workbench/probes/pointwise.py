"""Loss at many parameter points, one point at a time, on a private copy of the model: eagerly or compiled.

``PointModel`` is an eval-mode copy of a model (made once per model and kept in a per-process cache) whose
perturbed parameters are overwritten in place for each point, so a point costs one plain forward pass: no
re-parametrisation as ``torch.func.functional_call`` does, and (for images on a CPU) convolutions in channels-last
layout, which avoids PyTorch's slow NCHW max-pooling. The user's model is never touched. Its compiled forward
(``torch.compile``) is cached with it, so a second slice of the same model does not compile again.

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
from collections.abc import Callable, Iterable, Sequence

import torch

from workbench.inputs import Batch, LossFn, batch_on_device, check_scalar_loss
from workbench.params import unflatten

#: Compile when the points still to evaluate would take at least this long eagerly (seconds). A compilation took
#: 4-16 s on the benchmark CPU and then evaluated points 3-6× faster, so it pays from about 20 s of eager work.
COMPILE_PAYS_SECONDS = 20.0
#: The same threshold when this model's compiled forward is already cached (no compilation to pay).
CACHED_COMPILE_PAYS_SECONDS = 1.0

#: (inputs, targets) -> (loss, fraction correct) of the private copy at its current parameters.
PointMetrics = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class PointModel:
    """A private eval-mode copy of ``model`` whose parameters ``names`` are overwritten point by point.

    Args:
        model: the user's model (copied with ``copy.deepcopy``; never modified).
        names: the qualified names of the parameters a point sets, in the order of its flat vector.
        channels_last: convert the copy to channels-last layout (``prepare`` converts the inputs).
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
        self._compiled: dict[tuple[LossFn, bool], PointMetrics] = {}
        #: (loss_fn, accuracy) -> seconds per point measured by the automatic choice: "eager", "compiled".
        self.timings: dict[tuple[LossFn, bool], dict[str, float]] = {}

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

    def metrics(self, loss_fn: LossFn, accuracy: bool, *, compiled: bool) -> PointMetrics:
        """The loss (and fraction correct) of the copy at its current parameters, for a batch from ``prepare``; eager
        or compiled (cached)."""
        eager = self._eager_metrics(loss_fn, accuracy)
        if not compiled:
            return eager
        key = (loss_fn, accuracy)
        if key not in self._compiled:
            self._compiled[key] = torch.compile(eager, dynamic=False)
        return self._compiled[key]

    def has_compiled(self, loss_fn: LossFn, accuracy: bool) -> bool:
        """Whether a compiled forward for this loss and accuracy flag is cached."""
        return (loss_fn, accuracy) in self._compiled

    def prepare(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch in the layout the copy expects (channels-last images when the copy is channels-last)."""
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, targets

    def _eager_metrics(self, loss_fn: LossFn, accuracy: bool) -> PointMetrics:
        network = self.copy

        def metrics(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            outputs = network(inputs)
            loss = loss_fn(outputs, targets)
            if not accuracy:
                return loss, loss
            check_classification(outputs, targets)
            return loss, (outputs.argmax(dim=-1) == targets).to(loss.dtype).mean()

        return metrics


def check_classification(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise a ValueError unless ``outputs`` are class scores ``(batch, classes)`` for integer targets ``(batch,)``."""
    integer_targets = not targets.is_floating_point() and not targets.is_complex()
    if outputs.dim() < 2 or tuple(outputs.shape[:-1]) != tuple(targets.shape) or not integer_targets:
        raise ValueError(
            "accuracy=True needs class scores of shape (batch, classes) and integer class targets of shape "
            f"(batch,); got outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} ({targets.dtype})"
        )


_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, PointModel] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def point_model_for(model: torch.nn.Module, names: Sequence[str], inputs: torch.Tensor) -> PointModel | None:
    """The cached private copy of ``model`` (made or remade when its structure changed); None when the model cannot
    be deep-copied (then the caller evaluates functionally). ``pointwise_losses`` syncs its values first."""
    channels_last = inputs.dim() == 4 and inputs.device.type == "cpu"
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
    loss_fn: LossFn,
    *,
    accuracy: bool,
    torch_compile: bool | None,
    num_points: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and fraction correct (size-weighted over ``batches``) at every flat point ``(n,)`` of ``points``.

    Args:
        point_model: the private copy (from ``point_model_for``), synced with the model and used under its lock.
        points: flat parameter vectors θ + δ, one per point.
        torch_compile: True compiles, False never does, None chooses (see the module docstring).
        num_points: how many points ``points`` holds, for the automatic choice (None: never compile by itself).

    Returns:
        ``(losses, accuracies)``: float64 CPU tensors ``(m,)`` (accuracies zero unless ``accuracy``).
    """
    device = point_model.targets[0].device
    on_device = [(batch.weight, *point_model.prepare(*batch_on_device(batch, device))) for batch in batches]
    losses: list[torch.Tensor] = []
    corrects: list[torch.Tensor] = []
    with point_model.lock, torch.no_grad():
        point_model.sync()
        eager = point_model.metrics(loss_fn, accuracy, compiled=False)
        choice = _Choice(point_model, loss_fn, accuracy, torch_compile, num_points)
        for index, point in enumerate(points):
            point_model.load(point)
            metrics = choice.metrics(index, eager)
            start = time.perf_counter()
            loss, correct = _evaluate(metrics, on_device, index == 0)
            choice.observe(index, time.perf_counter() - start)
            losses.append(loss)
            corrects.append(correct)
    if not losses:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    return torch.stack(losses).double().cpu(), torch.stack(corrects).double().cpu()


def _evaluate(
    metrics: PointMetrics, batches: list[tuple[float, torch.Tensor, torch.Tensor]], check: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batches) == 1:  # the common case: no weighting
        loss, correct = metrics(batches[0][1], batches[0][2])
        if check:
            check_scalar_loss(loss)
        return loss.reshape(()), correct.reshape(())
    total_loss: torch.Tensor | float = 0.0
    total_correct: torch.Tensor | float = 0.0
    for weight, inputs, targets in batches:
        loss, correct = metrics(inputs, targets)
        if check:
            check_scalar_loss(loss)
        total_loss = total_loss + weight * loss
        total_correct = total_correct + weight * correct
    return torch.as_tensor(total_loss).reshape(()), torch.as_tensor(total_correct).reshape(())


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
        loss_fn: LossFn,
        accuracy: bool,
        torch_compile: bool | None,
        num_points: int | None,
    ) -> None:
        self.point_model, self.key = point_model, (loss_fn, accuracy)
        on_cpu = point_model.targets[0].device.type == "cpu"
        self.fixed = torch_compile if torch_compile is not None or on_cpu else False  # timed on a CPU only
        self.num_points = num_points
        self.timings = point_model.timings.setdefault(self.key, {})
        self.use_compiled = bool(torch_compile)
        if self.fixed is None and self._decided():
            self.use_compiled = self.timings["compiled"] < self.timings["eager"] and self._pays(0)
            self.fixed = self.use_compiled  # nothing left to time
        self.compiled = point_model.metrics(loss_fn, accuracy, compiled=True) if self.use_compiled else None

    def metrics(self, index: int, eager: PointMetrics) -> PointMetrics:
        if self.fixed is None and index == 3 and self._pays(3):
            self.compiled = self.point_model.metrics(*self.key, compiled=True)
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
        cached = self.point_model.has_compiled(*self.key)
        threshold = CACHED_COMPILE_PAYS_SECONDS if cached else COMPILE_PAYS_SECONDS
        return self.timings["eager"] * (self.num_points - done) >= threshold
