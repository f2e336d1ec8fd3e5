"""``load(name, split, ...)`` and ``dataset_shape(name)``: any dataset through its record
(``pyro_air.data.records``), the named sets, your own file and torchvision's alike."""
from __future__ import annotations

import torch

from pyro_air.data.errors import DataFileError
from pyro_air.data.binarize import static_draw
from pyro_air.data.records import BINARIZE_MODES, DATASETS, DatasetRecord
from pyro_air.data.vision import is_torchvision_name, torchvision_record


def dataset_record(name: str) -> DatasetRecord:
    """The record of a registered dataset, or of ``torchvision:NAME`` (an unknown name is refused)."""
    return torchvision_record(name) if is_torchvision_name(name) else DATASETS.get(name)


def dataset_shape(name: str, path=None, data_dir=None) -> tuple:
    """The shape of one datapoint of a dataset: (D,), (H, W) or (C, H, W); the named image sets are (28, 28)."""
    return dataset_record(name).datapoint_shape(path=path, data_dir=data_dir)


def load(name: str, split: str = "train", binarize: str = "static", train_size: int | None = None,
         data_dir=None, path=None) -> torch.Tensor:
    """Load a dataset split as a float32 tensor [N, D] (D = 784 for the named image datasets).

    ``binarize="static"`` (default) returns {0, 1} pixels fixed by a documented seed, and
    ``"static:N"`` the N-th other such draw of the same grey images (``pyro_air.data.binarize``);
    ``binarize="dynamic"`` returns grey levels in [0, 1] that the training loop redraws as
    Bernoulli pixels every time a batch is used; ``binarize="none"`` returns the grey levels (for
    a continuous-Bernoulli or Gaussian likelihood). ``path``: the file of dataset ``"file"``
    (binary files stay as they are under "static"). ``"torchvision:NAME"``: torchvision's dataset
    NAME from files under ``data_dir`` (``pyro_air.data.vision``), binarized like a file.
    ``train_size`` takes a fixed random subset of the training split (nested: a smaller subset lies
    inside a larger one).
    """
    record = dataset_record(name)
    if split not in record.splits:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(record.splits)}")
    if binarize not in BINARIZE_MODES and static_draw(binarize) is None:
        raise ValueError(f"unknown binarize mode {binarize!r}; use one of {', '.join(BINARIZE_MODES)} or 'static:N' "
                         "(static draw N of the grey images; 'static' is draw 0)")
    if train_size is not None:
        n_max = record.train_images
        if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 1:
            raise ValueError(f"train_size must be a positive integer, got {train_size!r}")
        if n_max is not None and train_size > n_max:
            raise ValueError(f"train_size={train_size} exceeds the {n_max} training images of {name}")
    if binarize != "static" and not record.grey_levels:   # dynamic, none and another static draw need grey levels
        grey = " and ".join(repr(n) for n in DATASETS.names() if DATASETS.get(n).grey_levels)
        raise ValueError(f"binarize={binarize!r} needs grey levels; only {grey} (and torchvision:NAME) have them. "
                         "Use 'static'.")
    x = record.load(split, binarize=binarize, train_size=train_size, data_dir=data_dir, path=path)
    if len(x) == 0:
        raise DataFileError(f"dataset {name!r} split {split!r} is empty; check the data file")
    return x.float().contiguous()
