"""Dataset records: what a dataset is (name, the shape of one datapoint, its splits, whether it holds
grey levels, how many training images it has) and how it loads, registered where the dataset is
defined (``register(DatasetRecord(...))`` in ``mnist.py``, ``files.py``, ``own.py``; torchvision's
datasets make theirs on demand, ``pyro_air.data.vision.torchvision_record``). ``pyro_air.data.load``
and ``dataset_shape`` read the record instead of special-casing names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyro_air.core.registry import Registry

SPLITS = ("train", "valid", "test")
BINARIZE_MODES = ("static", "dynamic", "none")  # none: grey levels as stored; also "static:N" (binarize.py)

DATASETS = Registry("dataset")


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset.

    ``load(split, binarize, train_size, data_dir, path) -> Tensor[N, ...]``; ``shape``: one
    datapoint's shape ((D,), (H, W) or (C, H, W)), or ``shape(path=..., data_dir=...)`` where the
    files decide it; ``grey_levels``: whether it holds grey levels (so that ``binarize="dynamic"`` /
    ``"none"`` apply), else only binary pixels; ``train_images``: the size of its training split where
    it is fixed (``train_size`` is checked against it), else None."""
    name: str
    load: Callable
    shape: tuple | Callable
    splits: tuple = SPLITS
    grey_levels: bool = False
    train_images: int | None = None

    def datapoint_shape(self, path=None, data_dir=None) -> tuple:
        return tuple(self.shape(path=path, data_dir=data_dir)) if callable(self.shape) else tuple(self.shape)


def register(record: DatasetRecord) -> DatasetRecord:
    """Add ``record`` to ``DATASETS`` under its name."""
    DATASETS.register(record.name)(record)
    return record
