"""torchvision's datasets by name, read from files already on disk: nothing is downloaded.

``pyro_air.data.load("torchvision:NAME", split, data_dir=DIR)`` (CLI: ``pyro-air train --data
torchvision:NAME --data-dir DIR``) builds ``torchvision.datasets.NAME(root=DIR, ...,
download=False)`` - e.g. NAME = MNIST, FashionMNIST, KMNIST, CIFAR10, SVHN - so the files must be where
torchvision's own ``download=True`` would have put them under DIR (for MNIST:
``DIR/MNIST/raw/train-images-idx3-ubyte`` and the other three files). DIR defaults to
``$PYRO_AIR_DATA``, else ``./data``. torchvision is optional (``pip install torch==<your torch>
torchvision``); without it, or without the files, the error says what to do.

Splits. A dataset with a ``train`` flag (MNIST, CIFAR10, ...) or a ``split`` name ("train" /
"test": SVHN, STL10) gives its test set as "test"; "valid" is 10 % of its training set, held out by
the fixed permutation of ``pyro_air.data.own`` (the rest is "train"). A dataset with neither is
one set, split 80 / 10 / 10 like a single-array file.

Values. The images (the dataset's ``data`` array when it holds them, else its items, PIL images or
arrays) become float32 [N, D] as a ``.npy`` file would (``pyro_air.data.own.as_datapoints``): uint8
divided by 255, channel-last RGB laid out channel-first; ``dataset_shape`` gives the image shape
(H, W) or (C, H, W) that the convolutional nets take. Labels are dropped.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch

from pyro_air.support.extras import MissingExtraError, require, torchvision_install_advice
from pyro_air.data.errors import DataFileError
from pyro_air.data.files import data_dir as resolve_data_dir
from pyro_air.data.own import as_datapoints, datapoint_shape, dataset_array, holdout_indices
from pyro_air.data.prepare import grey_or_binarized, training_subset
from pyro_air.data.records import DatasetRecord

PREFIX = "torchvision:"
TRAIN_SPLITS = ("train", "valid")  # both come from the dataset's training set


def is_torchvision_name(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def class_name(name: str) -> str:
    """"torchvision:MNIST" -> "MNIST" (refused: an empty name)."""
    cls = name[len(PREFIX):] if is_torchvision_name(name) else name
    if not cls:
        raise ValueError(f"{name!r} names no dataset; write torchvision:NAME, e.g. torchvision:MNIST")
    return cls


def torchvision_datasets():
    """The ``torchvision.datasets`` module (replaced by tests)."""
    import torchvision.datasets

    return torchvision.datasets


def dataset_class(name: str):
    """The class ``torchvision.datasets.NAME`` (after checking torchvision is installed)."""
    cls = class_name(name)
    require("torchvision", f"{PREFIX}{cls} (torchvision's {cls} data set)", torchvision_install_advice())
    try:
        module = torchvision_datasets()
    except (ImportError, RuntimeError, OSError) as err:  # e.g. a torchvision built for another torch
        raise MissingExtraError(f"torchvision is installed but could not be imported ({err}); it must be the release "
                                f"built for your torch: {torchvision_install_advice()}") from err
    found = getattr(module, cls, None)
    if not inspect.isclass(found):
        known = sorted(n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n)))
        raise KeyError(f"torchvision.datasets has no data set {cls!r} (names are case-sensitive); "
                       f"known: {', '.join(known[:40])}")
    return found


def _split_argument(cls) -> str | None:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    return "train" if "train" in params else "split" if "split" in params else None


def open_dataset(name: str, part: str, data_dir=None):
    """``torchvision.datasets.NAME(root, download=False)`` for ``part`` "train" or "test" (or None:
    a dataset without splits); a missing file becomes a ``DataFileError`` saying where to put it."""
    cls_obj = dataset_class(name)
    cls = class_name(name)
    root = resolve_data_dir(data_dir)
    kwargs = {"root": str(root), "download": False}
    kind = _split_argument(cls_obj)
    if kind == "train":
        kwargs["train"] = part != "test"
    elif kind == "split":
        kwargs["split"] = "test" if part == "test" else "train"
    try:
        return cls_obj(**kwargs)
    except TypeError as err:
        raise DataFileError(f"torchvision.datasets.{cls} needs arguments that pyro-air does not pass ({err}); build it "
                            "yourself and pass it through pyro_air.data.dataset_tensor(dataset)") from err
    except (RuntimeError, OSError, ValueError) as err:
        raise DataFileError(
            f"torchvision's {cls} found no usable files under {root} ({err}). Nothing is downloaded at run time: "
            f"put the files there first, e.g. run torchvision.datasets.{cls}(root={str(root)!r}, download=True) "
            "once on a machine with internet access and copy that directory here (MNIST's are "
            f"{root}/MNIST/raw/train-images-idx3-ubyte and its three siblings), or pass --data-dir (data_dir=) "
            "where they are") from err


def images_of(dataset) -> np.ndarray:
    """[N, ...] images of a torchvision dataset: its ``data`` array if it holds them, else its items."""
    data = getattr(dataset, "data", None)
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    if isinstance(data, np.ndarray) and data.ndim >= 2 and len(data) == len(dataset) and data.dtype.kind in "biuf":
        return data
    return dataset_array(dataset)


def has_splits(name: str) -> bool:
    return _split_argument(dataset_class(name)) is not None


def load_torchvision(name: str, split: str, data_dir=None) -> torch.Tensor:
    """One split of ``torchvision.datasets.NAME`` as float32 [N, D] (module docstring)."""
    where = f"{PREFIX}{class_name(name)}"
    if not has_splits(name):
        x = as_datapoints(images_of(open_dataset(name, None, data_dir)), where)
        return x[torch.from_numpy(holdout_indices(len(x), split, True, True))]
    if split == "test":
        return as_datapoints(images_of(open_dataset(name, "test", data_dir)), f"{where} (test)")
    x = as_datapoints(images_of(open_dataset(name, "train", data_dir)), f"{where} (train)")
    return x[torch.from_numpy(holdout_indices(len(x), split, True, False))]


def torchvision_shape(name: str, data_dir=None) -> tuple:
    """The shape of one image, (H, W) or (C, H, W) (channel-first), of ``torchvision.datasets.NAME``."""
    return datapoint_shape(images_of(open_dataset(name, "train" if has_splits(name) else None, data_dir)))


def torchvision_dimension(name: str, data_dir=None) -> int:
    return math.prod(torchvision_shape(name, data_dir))


def torchvision_record(name: str) -> DatasetRecord:
    """The record of ``torchvision:NAME``, made on demand (nothing is imported or read until it loads)."""
    def load(split, binarize="static", train_size=None, data_dir=None, path=None) -> torch.Tensor:
        x = training_subset(load_torchvision(name, split, data_dir), split, train_size, name)
        return grey_or_binarized(x, binarize, split, name)

    return DatasetRecord(name, load, shape=lambda path=None, data_dir=None: torchvision_shape(name, data_dir),
                         grey_levels=True)
