"""Resource diagnostics for tests and benchmarks: host synchronisations and peak tensor memory, on any device.

``HostSyncCounter`` counts the operations that make the host wait for an accelerator. On CUDA, reading a tensor's
value on the host (``float(t)``, ``t.item()``, ``bool(t)``, ``if t > 0``), copying a device tensor to the host
and data-dependent shapes (``nonzero``, boolean indexing) all wait until the GPU has finished every queued kernel.
The counter sees those operations as they pass through PyTorch's dispatcher, so the same check runs on a CPU,
where nothing actually waits: a step that counts zero here queues all its work without stalling a GPU. Not seen
on a CPU: ``.cpu()``, ``.tolist()`` and ``.numpy()`` of a CPU tensor, which read CPU memory without dispatching (on
CUDA they copy to the host first, which is counted). Code that runs during an optimizer step (the eigenvector
refreshes) therefore copies to the host only through ``workbench.devices.to_host``, an operator the dispatcher sees
on every device, counted here as a device-to-host copy on a CPU too. ``torch.cuda.set_sync_debug_mode`` reports
the CUDA syncs themselves.

``peak_tensor_bytes(function)`` measures the largest amount of tensor memory alive while ``function()`` runs,
beyond what was alive when it began, from the profiler's allocation records (CPU and CUDA alike).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
#: Operations that read values or shapes on the host, whatever the device.
_VALUE_READS = {
    _aten._local_scalar_dense.default: "scalar read (item / float / bool)",
    _aten.is_nonzero.default: "scalar read (item / float / bool)",
    _aten.equal.default: "torch.equal",
    _aten.nonzero.default: "data-dependent shape (nonzero / boolean indexing)",
    _aten.masked_select.default: "data-dependent shape (nonzero / boolean indexing)",
}
#: Operators counted by name (the same after ``importlib.reload`` of the module that defines them).
_NAMED_READS = {"workbench::to_host": "device-to-host copy"}


class HostSyncCounter(TorchDispatchMode):
    """Within the block (this thread only), count host reads and device-to-host copies by kind.

    Attributes:
        counts: ``Counter`` of kind → number of operations.
        total: their sum (property).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        kind = _VALUE_READS.get(func)
        if kind is None and isinstance(func, torch._ops.OpOverload):
            kind = _NAMED_READS.get(func.name())
        if kind is None and func is _aten.index.Tensor and _has_mask(args[1]):
            kind = "data-dependent shape (nonzero / boolean indexing)"
        if kind is not None:
            self.counts[kind] += 1
        result = func(*args, **kwargs)
        if func in (_aten._to_copy.default, _aten.copy_.default) and _copies_to_host(func, args, kwargs, result):
            self.counts["device-to-host copy"] += 1
        return result


def _has_mask(indices: list[torch.Tensor | None]) -> bool:
    return any(index is not None and index.dtype == torch.bool for index in indices)


def _copies_to_host(func: Any, args: tuple, kwargs: dict, result: Any) -> bool:
    source = args[1] if func is _aten.copy_.default else args[0]
    target = args[0] if func is _aten.copy_.default else result
    return (
        isinstance(source, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and source.device.type != "cpu"
        and target.device.type == "cpu"
    )


def peak_tensor_bytes(function: Callable[[], Any], device: str | torch.device = "cpu") -> int:
    """The largest number of bytes of tensor memory on ``device`` alive during ``function()`` beyond what was alive
    when it began (allocations and frees as the profiler records them, in time order)."""
    device = torch.device(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as recorded:
        function()
    changes = []
    pending = list(recorded.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == device.type:
            changes.append((event.start_time_ns, event.extra_fields.alloc_size))
        pending.extend(event.children)
    live = peak = 0
    for _, size in sorted(changes):
        live += size
        peak = max(peak, live)
    return peak
