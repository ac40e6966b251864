"""Datasets by name: 2-D toys, UCI digits, MNIST-1D (generated locally) and CIFAR-10/100, as tensors.

Files live under one data root (``resolve_data_root``: ``root=``, ``$WORKBENCH_DATA``, the checkout's ``data/``,
``~/.cache/workbench``); ``dataset_status`` and ``prepare_dataset`` say what is on disk and put it there.
"""

from workbench.datasets.augment import random_crop_flip
from workbench.datasets.registry import DATASETS, dataset_options, dataset_summary, load_dataset
from workbench.datasets.root import DataRoot, default_root, resolve_data_root
from workbench.datasets.splits import DatasetSplits
from workbench.datasets.storage import DatasetStatus, dataset_status, prepare_dataset

__all__ = ["DATASETS", "DataRoot", "DatasetSplits", "DatasetStatus", "dataset_options", "dataset_status",
    "dataset_summary", "default_root", "load_dataset", "prepare_dataset", "random_crop_flip", "resolve_data_root"]
