"""Python source as characters: next-character prediction on text every Python install carries (its standard
library), no download. A small language-modelling task for the workbench's sequence model."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from workbench._checks import check_float, check_int
from workbench.datasets.splits import DatasetSplits

#: The characters kept (printable ASCII and newline); every other character maps to the last class, "unknown".
ALPHABET = "\n" + "".join(chr(code) for code in range(32, 127))
VOCABULARY = (*ALPHABET, "<unk>")
#: The standard-library modules read, in this order (each present in CPython 3.10 and later).
SOURCES = ("functools.py", "argparse.py", "dataclasses.py", "textwrap.py", "typing.py", "inspect.py")


def load_python_source(
    *, seed: int, length: int = 64, num_chars: int = 200_000, test_fraction: float = 0.1
) -> DatasetSplits:
    """Characters of standard-library Python source, as windows of ``length`` tokens, input shape ``(length,)``.

    The text is the concatenation of ``SOURCES`` (from this interpreter's standard library, so it differs a little
    between Python versions), cut to its first ``num_chars`` characters. Inputs are windows of ``length`` character
    indices (int64 in ``[0, len(VOCABULARY))``); targets are the same windows shifted by one character, ``(N,
    length)``: next-character prediction at every position, which ``F.cross_entropy`` scores from logits of shape
    ``(B, vocabulary, length)``. Windows do not overlap. The last ``test_fraction`` of the text is the test split
    (a contiguous block, so test text was never seen in training); the training windows are in text order (the
    Trainer shuffles them). ``seed`` is accepted for the common interface and changes nothing.

    Args:
        length: tokens per window, in [2, 1024].
        num_chars: characters of text used, >= 10·length.
        test_fraction: share of the text held out, in (0, 1).
    """
    length = check_int("length", length, minimum=2, maximum=1024)
    num_chars = check_int("num_chars", num_chars, minimum=10 * length)
    test_fraction = check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0, min_inclusive=False,
                                max_inclusive=False)  # fmt: skip
    text = _standard_library_text()[:num_chars]
    index = {char: position for position, char in enumerate(ALPHABET)}
    tokens = torch.tensor([index.get(char, len(ALPHABET)) for char in text], dtype=torch.int64)
    cut = int(len(tokens) * (1 - test_fraction))
    train_inputs, train_targets = _windows(tokens[:cut], length)
    test_inputs, test_targets = _windows(tokens[cut:], length)
    return DatasetSplits(
        name="pysource",
        train=TensorDataset(train_inputs, train_targets),
        test=TensorDataset(test_inputs, test_targets),
        num_classes=len(VOCABULARY),
        input_shape=(length,),
        class_names=VOCABULARY,
        description=(
            f"{len(text):,} characters of Python's standard library ({', '.join(SOURCES)}), windows of {length}; "
            f"{len(train_inputs)} train / {len(test_inputs)} test windows (the last {test_fraction:g} of the text)"
        ),
        mean=(0.0,),
        std=(1.0,),
    )


def _standard_library_text() -> str:
    folder = Path(sysconfig.get_paths()["stdlib"])
    return "".join((folder / name).read_text(encoding="utf-8") for name in SOURCES)


def _windows(tokens: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping ``(inputs, targets)`` windows, targets one token ahead, both ``(N, length)``."""
    count = (len(tokens) - 1) // length
    inputs = tokens[: count * length].reshape(count, length)
    targets = tokens[1 : count * length + 1].reshape(count, length)
    return inputs, targets
