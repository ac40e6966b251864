"""Mixed precision for training, done right for SAM: bfloat16 autocast (no scaler), or float16 autocast with a
``GradScaler`` whose unscaling and skipping the optimizers handle per pass (``workbench.optim.WrappedOptimizer``).
Probes and eigenvector refreshes always run in float32."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

#: autocast dtype of each mixed-precision mode.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision(
    amp: str, device: torch.device
) -> tuple[Callable[[], AbstractContextManager], torch.amp.GradScaler | None]:
    """The autocast context factory and the loss scaler of mode ``amp`` (``"off"``, ``"bf16"``, ``"fp16"``).

    bfloat16 has float32's range: no scaler. float16 gets ``torch.amp.GradScaler`` (dynamic loss scaling) on the
    device's type, CUDA or CPU.

    Raises:
        ValueError: naming ``amp`` when this device cannot autocast to that dtype.
    """
    if amp == "off":
        return nullcontext, None
    dtype = AMP_DTYPES[amp]
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"amp={amp!r}: autocast is not available on device type {device.type!r}")
    try:
        with torch.autocast(device_type=device.type, dtype=dtype):
            pass
    except RuntimeError as error:  # the device type has autocast, but not for this dtype
        raise ValueError(f"amp={amp!r} is not supported on {device}: {error}") from None
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    return partial(torch.autocast, device_type=device.type, dtype=dtype), scaler


def check_first_loss(loss: object) -> None:
    """Check the training loss of the first step: a one-element, finite tensor that depends on the parameters.

    Raises:
        ValueError: naming ``loss_fn`` and what it returned.
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"loss_fn must return a scalar tensor (the mean loss over the batch); at the first step it returned "
            f"{shape}"
        )
    if not loss.requires_grad:
        raise ValueError("loss_fn's loss does not depend on the model's parameters (it carries no gradient)")
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"loss_fn returned {value} at the first step, before any update: check the model and data")
