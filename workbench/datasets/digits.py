"""UCI handwritten digits: 1,797 grey 8×8 images of 0–9, shipped with scikit-learn (no download)."""

from __future__ import annotations

import numpy as np
import torch

from workbench._checks import check_bool
from workbench.datasets.splits import DatasetSplits, check_test_fraction, standardized_splits, stratified_split

PIXEL_MAX = 16  # the UCI digits store ink counts 0..16 per pixel


def load_digits(*, seed: int, image: bool = True, test_fraction: float = 0.2) -> DatasetSplits:
    """UCI digits, scaled to [0, 1] and standardised with the training pixels' mean and std (one channel).

    Args:
        seed: seed of the stratified split.
        image: ``True`` gives input shape ``(1, 8, 8)`` (for the CNN); ``False`` gives flat ``(64,)`` vectors.
            Both hold the same standardised values.
        test_fraction: fraction of each class held out, in (0, 1).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_bool("image", image)
    test_fraction = check_test_fraction(test_fraction)
    bunch = sklearn_digits()
    pixels = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / PIXEL_MAX).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train_index, test_index = stratified_split(labels.numpy(), test_fraction, seed)
    shape = "1×8×8 images" if image else "64-pixel vectors"
    return standardized_splits(
        "digits",
        (pixels[train_index], labels[train_index]),
        (pixels[test_index], labels[test_index]),
        class_names=tuple(str(k) for k in bunch.target_names),
        description=(
            f"UCI handwritten digits as {shape}; {len(train_index)} train / {len(test_index)} test "
            f"(stratified, seed {seed})"
        ),
        flatten=not image,
    )
