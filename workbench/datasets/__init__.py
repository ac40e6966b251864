"""Datasets by name: 2-D toys, UCI digits, MNIST-1D (generated locally) and CIFAR-10/100, as tensors."""

from workbench.datasets.augment import random_crop_flip
from workbench.datasets.registry import DATASETS, dataset_options, dataset_summary, default_root, load_dataset
from workbench.datasets.splits import DatasetSplits

__all__ = ["DATASETS", "DatasetSplits", "dataset_options",
    "dataset_summary", "default_root", "load_dataset", "random_crop_flip"]
