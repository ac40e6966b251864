"""Device selection (``"auto"`` means CUDA when present, else CPU) and counted copies to the host."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` into a ``torch.device``.

    Raises:
        ValueError: for an unparseable name, or ``"cuda"`` when no CUDA device is available.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but no CUDA device is available; use 'auto' or 'cpu'")
    return resolved


@torch.library.custom_op("workbench::to_host", mutates_args=())
def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device="cpu", dtype=torch.float64, copy=True)


@_to_host.register_fake
def _(tensor: torch.Tensor) -> torch.Tensor:  # its shape, for torch.compile's tracing
    return torch.empty_like(tensor, device="cpu", dtype=torch.float64)  # strides kept, as by the copy


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` copied to the host in float64, detached: the way code that runs during an optimizer step
    reads device values in bulk.

    On CUDA the copy waits for every queued kernel. It runs as the dispatcher-visible operator
    ``torch.ops.workbench.to_host``, so that ``workbench.diagnostics.HostSyncCounter`` counts it on every device: on a
    CPU, where ``tensor.cpu()`` is a no-op the dispatcher never sees, a count then equals the count on CUDA.
    """
    return _to_host(tensor.detach())
