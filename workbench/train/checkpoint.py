"""Checkpoint files that load without running code and are checked before they are trusted.

A checkpoint is a dict of plain values (tensors, numbers, strings, None, lists, tuples and dicts of them), so that
``torch.load(..., weights_only=True)`` reads it: nothing in the file can execute code while it is loaded. Beside
the caller's entries it holds one more, ``"checkpoint"``: the format version and the SHA-256 of every other
entry (tensor bytes with dtype and shape, plain values with their type), computed when writing and compared when
reading, so a changed byte is an error naming the file instead of a silently different weight.

``writer_record`` says what wrote a training state (optimizer class, world size, versions of workbench and torch)
and ``check_writer`` refuses to continue a state with a different optimizer class or world size. The random-number
generators of torch, CUDA, numpy and Python are saved as tensors and lists (``rng_states``), never as pickled
numpy or Python objects.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import workbench

FORMAT_VERSION = 1
META_KEY = "checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted: unreadable, not written by workbench, or corrupted."""


# -- writing and reading ------------------------------------------------------------------------------------------


def write_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (plain values only) to ``path`` atomically, with its checksum; returns the path.

    Raises:
        TypeError: naming the entry when ``state`` holds a value ``weights_only`` loading would refuse.
        ValueError: when ``state`` has an entry named ``"checkpoint"`` (the file's own record).
    """
    path = Path(path)
    if META_KEY in state:
        raise ValueError(f"state must not hold an entry named {META_KEY!r} (the checkpoint's own record)")
    meta = {"format": FORMAT_VERSION, "sha256": state_digest(state)}
    temporary = path.with_name(path.name + ".tmp")
    try:
        torch.save({**state, META_KEY: meta}, temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state written by ``write_checkpoint`` to ``path``, on the CPU, after its checksum matched.

    Raises:
        CheckpointError: naming the file when it is missing, unreadable (truncated, not a torch file, or holding
            objects other than plain values), written without a checksum, or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files and refused objects
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely (damaged, or not a workbench checkpoint): {_gist(error)}"
        ) from None
    meta = loaded.get(META_KEY) if isinstance(loaded, dict) else None
    if not isinstance(meta, dict) or "sha256" not in meta:
        raise CheckpointError(
            f"checkpoint {path} has no {META_KEY!r} record with a checksum: it was not written by this version of "
            "workbench and cannot be verified"
        )
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')!r}; this workbench reads format {FORMAT_VERSION}"
        )
    state = {key: value for key, value in loaded.items() if key != META_KEY}
    if state_digest(state) != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: its contents do not match the SHA-256 checksum written with them"
        )
    return state


def _gist(error: Exception) -> str:
    """The telling line of a ``torch.load`` error (its weights-only refusal names the object it refused)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refusal = [line for line in lines if "WeightsUnpickler error" in line]
    return (refusal or lines or [type(error).__name__])[0]


def state_digest(state: Any) -> str:
    """SHA-256 (hex) of a nest of plain values: tensors by dtype, shape and bytes; the rest by type and ``repr``.

    Dict entries are taken in the order of their keys' ``repr``; lists and tuples count as the same sequence.

    Raises:
        TypeError: naming the value's type when it is not a plain value.
    """
    hasher = hashlib.sha256()
    _update(hasher, state, "state")
    return hasher.hexdigest()


def _update(hasher: Any, value: Any, where: str) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(f"tensor {tensor.dtype} {tuple(value.shape)};".encode())
        hasher.update(memoryview(tensor.view(torch.uint8).numpy()))
    elif isinstance(value, Mapping):
        hasher.update(f"map {len(value)};".encode())
        for key in sorted(value, key=repr):
            hasher.update(f"key {key!r};".encode())
            _update(hasher, value[key], f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        hasher.update(f"sequence {len(value)};".encode())
        for index, item in enumerate(value):
            _update(hasher, item, f"{where}[{index}]")
    elif value is None or isinstance(value, bool | int | float | str):
        hasher.update(f"{type(value).__name__} {value!r};".encode())
    else:
        raise TypeError(
            f"{where} is a {type(value).__name__}; a checkpoint holds only tensors, numbers, strings, None, "
            "lists, tuples and dicts"
        )


# -- what wrote a state ------------------------------------------------------------------------------------------


def world_size() -> int:
    """The number of processes training together: torch.distributed's world size when initialised, else 1."""
    distributed = torch.distributed
    return distributed.get_world_size() if distributed.is_available() and distributed.is_initialized() else 1


def writer_record(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What wrote a training state: the optimizer class, the world size and the workbench and torch versions."""
    return {
        "optimizer": type(optimizer).__name__,
        "world_size": world_size(),
        "workbench": workbench.__version__,
        "torch": str(torch.__version__),
    }


def check_writer(writer: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer) -> None:
    """Refuse to continue a state written with another optimizer class or world size (versions may differ).

    Raises:
        ValueError: naming what differs, or when ``writer`` is missing.
    """
    if not isinstance(writer, Mapping):
        raise ValueError("the state has no 'writer' record (optimizer class, world size): it cannot be checked")
    ours = writer_record(optimizer)
    if writer.get("optimizer") != ours["optimizer"]:
        raise ValueError(
            f"the state was written with optimizer class {writer.get('optimizer')!r} and cannot continue with "
            f"{ours['optimizer']!r}"
        )
    saved_world = writer.get("world_size")
    if saved_world != ours["world_size"]:
        raise ValueError(
            f"the state was written with world size {saved_world} and cannot continue with {ours['world_size']}: it "
            f"was taken by a run on {saved_world} process(es); resume it on {saved_world} (torchrun --nproc-per-node "
            f"{saved_world} …), as its batches are sharded"
        )


# -- random-number generators as plain values ----------------------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """The states of torch's, CUDA's, numpy's and Python's global generators as tensors, numbers and lists."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(python_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the global generators to ``rng_states()``'s output."""
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (numpy_state["name"], keys, numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"].tolist()), python_state["gauss_next"]))
