"""Your own data: ``.npz`` / ``.npy`` files and ``torch.utils.data.Dataset`` objects as [N, D] tensors.

``load_file(path, split=None)`` reads

- a ``.npy`` file: one array [N, ...] of datapoints;
- a ``.npz`` file: either arrays named ``train``, ``valid``, ``test`` (each split as given; a missing
  ``valid`` or ``test`` is held out of ``train`` as below), or a single array (any name, or the one
  named ``x``): the datapoints.

Every datapoint is flattened ([N, H, W] or [N, C, H, W] images become [N, D]) in channel-first order:
a 4-D array whose last axis has at most 4 entries and whose axis 1 has more (e.g. [N, 32, 32, 3],
as image libraries store RGB) is channel-last and is transposed to [N, C, H, W] first; any other
array is taken as it is (so save a tiny image of height <= 4 as [N, C, H, W]). ``file_shape`` gives
the shape of one datapoint in that layout ((D,), (H, W) or (C, H, W)): the ``image_shape`` of the
convolutional nets. Integer arrays whose values are only 0 and 1 (and ``bool`` arrays) are binary
and kept as 0/1; other ``uint8`` arrays are 8-bit grey levels and are divided by 255; other integers
are kept as they are; a one-line notice on stderr names the range of integers that are not 0/1 and
what was done (``integer_scale``). The result is float32. With
``split`` ("train" / "valid" / "test") a file without split arrays is split by a fixed random
permutation (``numpy.random.RandomState(FILE_SPLIT_SEED)``): 10 % validation, 10 % test (at least
one datapoint each), the rest training; the same file always gives the same splits.

Binary data (only 0 and 1) suits the Bernoulli likelihood; grey levels in [0, 1] the continuous
Bernoulli (or Bernoulli after binarization); other real values the Gaussian likelihood.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from pyro_air.data.errors import DataFileError
from pyro_air.data.npy_header import check_declared_sizes
from pyro_air.data.prepare import grey_or_binarized, training_subset
from pyro_air.data.records import DatasetRecord, register

FILE_SPLIT_SEED = 1234
HOLDOUT_FRACTION = {"valid": 0.1, "test": 0.1}
SPLIT_KEYS = ("train", "valid", "test")
FILE_SUFFIXES = (".npz", ".npy")


MAX_CHANNELS = 4  # RGBA


def channels_first(array: np.ndarray) -> np.ndarray:
    """[N, H, W, C] (last axis <= 4 entries, axis 1 more) -> [N, C, H, W]; any other array unchanged."""
    if array.ndim == 4 and array.shape[-1] <= MAX_CHANNELS < array.shape[1]:
        return np.transpose(array, (0, 3, 1, 2))
    return array


def datapoint_shape(array) -> tuple:
    """The shape of one datapoint of [N, ...] in pyro-air's layout (``channels_first``): (D,), (H, W) or (C, H, W)."""
    array = np.asarray(array) if not hasattr(array, "shape") else array
    shape = tuple(int(s) for s in array.shape[1:])
    if len(shape) == 3 and shape[-1] <= MAX_CHANNELS < shape[0]:
        return (shape[2], shape[0], shape[1])
    return shape if shape else (1,)


_NOTICES_GIVEN: set = set()


def notice(message: str) -> None:
    """One line on stderr, once per process for the same message: what was done with the data."""
    if message not in _NOTICES_GIVEN:
        _NOTICES_GIVEN.add(message)
        print(f"pyro-air: note: {message}", file=sys.stderr)


def integer_scale(array: np.ndarray, where: str) -> float:
    """What an array's values are divided by: 1 for floats, bools and integers that are only 0 and 1
    (binary data, kept as 0/1), 255 for other ``uint8`` (8-bit grey levels), 1 for other integers.
    Integers that are not only 0 and 1 get a one-line ``notice`` naming their range and the choice."""
    if array.dtype.kind not in "iu":
        return 1.0
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi <= 1:
        return 1.0
    if array.dtype == np.uint8:
        notice(f"{where} holds integers {lo}..{hi} (uint8): read as 8-bit grey levels and divided by 255; "
               "save binary data as 0/1")
        return 255.0
    notice(f"{where} holds integers {lo}..{hi} ({array.dtype.name}): used as they are, not scaled; for grey "
           "levels in [0, 1] save x / 255 (or x / x.max()) as float32")
    return 1.0


def as_datapoints(array, where: str) -> torch.Tensor:
    """[N, ...] numbers -> float32 [N, D] (integers scaled by ``integer_scale``: 0/1 kept, other uint8 / 255;
    bool as 0/1; channel-last images made channel-first); refused: text, NaN / inf, empty."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataFileError(f"{where} holds {array.dtype.name} values, not numbers; save a numeric array "
                            "(e.g. numpy.save(path, images.astype('float32')))")
    if array.ndim == 0 or len(array) == 0:
        raise DataFileError(f"{where} holds no datapoints (shape {array.shape}); save an array of shape [N, ...]")
    array = channels_first(array)
    scale = integer_scale(array, where)
    scaled = array.astype(np.float32) / scale if scale != 1.0 else array.astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(scaled.reshape(len(scaled), -1)))
    bad = ~torch.isfinite(x)
    if bad.any():
        raise DataFileError(f"{where} holds {int(bad.sum())} NaN or infinite values; remove or replace them first")
    return x


def _check_path(path) -> Path:
    path = Path(path)
    if path.suffix not in FILE_SUFFIXES:
        raise DataFileError(f"{path}: pyro-air reads .npz and .npy files, not {path.suffix or 'a file without a suffix'!r}; "
                            "save your array with numpy.save(path.npy, x) or numpy.savez(path.npz, train=..., valid=..., test=...)")
    if not path.exists():
        raise DataFileError(f"data file {path} not found; pass the path of a .npz or .npy file")
    return path


def _read_arrays(path: Path) -> dict:
    try:
        if path.suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as err:
        raise DataFileError(f"{path} could not be read as a {path.suffix} file ({err}); it is truncated, corrupt or "
                            "holds Python objects (saved with allow_pickle) - save plain numeric arrays") from err


def holdout_indices(n: int, split: str, exclude_valid: bool, exclude_test: bool) -> np.ndarray:
    """Indices of ``split`` in a fixed permutation of n datapoints: 10 % each for the validation and
    test splits that are held out (``exclude_*``), the rest training (see the module docstring)."""
    order = np.random.RandomState(FILE_SPLIT_SEED).permutation(n)
    sizes = {k: (max(1, round(HOLDOUT_FRACTION[k] * n)) if use else 0)
             for k, use in (("valid", exclude_valid), ("test", exclude_test))}
    if n - sizes["valid"] - sizes["test"] < 1:
        raise DataFileError(f"{n} datapoints are too few to hold out a validation and a test split; "
                            "give at least 3, or store train / valid / test arrays in a .npz file")
    parts = {"valid": order[:sizes["valid"]], "test": order[sizes["valid"]:sizes["valid"] + sizes["test"]],
             "train": order[sizes["valid"] + sizes["test"]:]}
    return np.sort(parts[split])


def load_file(path: str | os.PathLike, split: str | None = None) -> torch.Tensor:
    """The datapoints of a .npz / .npy file as float32 [N, D]; see the module docstring."""
    path = _check_path(path)
    arrays = _read_arrays(path)
    named = {k: arrays[k] for k in SPLIT_KEYS if k in arrays}
    if named:
        if "train" not in named:
            raise DataFileError(f"{path} has arrays {sorted(arrays)}: split arrays need at least 'train' "
                                "(and optionally 'valid', 'test')")
        if split is None:
            return torch.cat([as_datapoints(v, f"{path}[{k!r}]") for k, v in named.items()])
        held_out = [k for k in ("valid", "test") if k not in named]  # taken out of 'train'
        if split in named and not (split == "train" and held_out):
            return as_datapoints(named[split], f"{path}[{split!r}]")
        train = as_datapoints(named["train"], f"{path}['train']")
        return train[torch.from_numpy(holdout_indices(len(train), split, "valid" not in named, "test" not in named))]
    if len(arrays) != 1 and "x" not in arrays:
        raise DataFileError(f"{path} holds several arrays {sorted(arrays)}; name the datapoints 'x', or store "
                            "the splits as 'train', 'valid', 'test'")
    key = "x" if "x" in arrays else next(iter(arrays))
    x = as_datapoints(arrays[key], str(path) if path.suffix == ".npy" else f"{path}[{key!r}]")
    if split is None:
        return x
    return x[torch.from_numpy(holdout_indices(len(x), split, True, True))]


def file_shape(path: str | os.PathLike) -> tuple:
    """The shape of one datapoint of a .npz / .npy file in pyro-air's layout: (D,), (H, W) or (C, H, W)."""
    load_file(path, "train")  # every check of load_file (a file it refuses has no shape)
    arrays = _read_arrays(Path(path))
    array = arrays["train"] if "train" in arrays else arrays["x"] if "x" in arrays else next(iter(arrays.values()))
    return datapoint_shape(array)


def file_dimension(path: str | os.PathLike) -> int:
    """D of the datapoints of a .npz / .npy file (what the model's x_dim must be)."""
    return math.prod(file_shape(path))


def dataset_array(dataset) -> np.ndarray:
    """The items of a ``torch.utils.data.Dataset`` (or any sized sequence) stacked as an array [N, ...].

    Items may be tensors, arrays or PIL images (anything ``numpy.asarray`` takes), or tuples / lists
    whose first element is one (``(image, label)``, as torchvision datasets give)."""
    items = []
    for i in range(len(dataset)):
        item = dataset[i]
        if isinstance(item, (tuple, list)):
            item = item[0]
        items.append(item.numpy() if isinstance(item, torch.Tensor) else np.asarray(item))
    if not items:
        raise DataFileError("the dataset is empty; pass one with at least one item")
    shapes = {a.shape for a in items}
    if len(shapes) != 1:
        raise DataFileError(f"the dataset's items have different shapes {sorted(shapes)[:3]}; resize them to one shape")
    return np.stack(items)


def dataset_tensor(dataset) -> torch.Tensor:
    """The items of a ``torch.utils.data.Dataset`` (or any sized sequence) as float32 [N, D].

    Items as in ``dataset_array``: tensors (e.g. after a ``ToTensor`` transform), arrays or PIL
    images, alone or first in a tuple. Integer items as in ``integer_scale`` (0/1 kept, other uint8
    scaled by 1/255); channel-last images
    ([H, W, 3], as PIL gives) are laid out channel-first (module docstring)."""
    return as_datapoints(dataset_array(dataset), "the dataset")


def load_own_file(split, binarize="static", train_size=None, data_dir=None, path=None) -> torch.Tensor:
    """The record's loader of dataset "file": ``path``'s split, subset and binarized as asked."""
    if path is None:
        raise ValueError("dataset 'file' needs the path of a .npz or .npy file: load('file', split, path=...) "
                         "or pyro-air train --data PATH")
    check_declared_sizes(path)  # before numpy allocates what a header declares
    x = training_subset(load_file(path, split), split, train_size, path)
    return grey_or_binarized(x, binarize, split, path)


def own_file_shape(path=None, data_dir=None) -> tuple:
    """The record's shape of dataset "file": one datapoint of ``path``."""
    check_declared_sizes(path)  # before numpy allocates what a header declares
    return file_shape(path)


register(DatasetRecord("file", load_own_file, shape=own_file_shape, grey_levels=True))
