"""Loaders for the standard binary-image files that the user supplies.

Nothing is downloaded: the files are read from a directory given by argument or by the
``PYRO_AIR_DATA`` environment variable.

- ``binarized_mnist_{train,valid,test}.amat`` (Larochelle's static binarization, 50k/10k/10k):
  one image per line, 784 space-separated 0/1 values.
- ``chardata.mat`` (OMNIGLOT as in the IWAE code): MATLAB arrays ``data`` [784, 24345] and
  ``testdata`` [784, 8070] of grey levels, pixels in column-major order. The train part is split
  23000 / 1345 by a fixed random hold-out (``RandomState(1234)``) and every split is statically
  binarized with seeds 0 / 1 / 2.
- ``caltech101_silhouettes_28_split1.mat``: ``train_data`` [4100, 784], ``val_data`` [2264, 784],
  ``test_data`` [2307, 784], already binary.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pyro_air.data.binarize import binarize_static
from pyro_air.data.errors import DataFileError
from pyro_air.data.mnist import subset_indices
from pyro_air.data.records import DatasetRecord, register

PUBLISHED_AT = {
    "mnist-amat": "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
    "omniglot": "https://github.com/yburda/iwae/tree/master/datasets/OMNIGLOT (chardata.mat)",
    "caltech101": "https://people.cs.umass.edu/~marlin/data.shtml (caltech101_silhouettes_28_split1.mat)",
}
OMNIGLOT_SPLIT = (23000, 1345, 8070)
OMNIGLOT_HOLDOUT_SEED = 1234
AMAT_SPLIT_NAMES = {"train": "train", "valid": "valid", "test": "test"}
CALTECH_KEYS = {"train": "train_data", "valid": "val_data", "test": "test_data"}
BINARIZATION_SEEDS = {"train": 0, "valid": 1, "test": 2}


def data_dir(directory: str | os.PathLike | None) -> Path:
    if directory is not None:
        return Path(directory)
    env = os.environ.get("PYRO_AIR_DATA")
    if env:
        return Path(env)
    return Path.cwd() / "data"


def _require(path: Path, dataset: str) -> Path:
    if not path.exists():
        raise DataFileError(
            f"{dataset}: file {path} not found. Download {path.name} from {PUBLISHED_AT[dataset]} "
            f"and put it in a directory passed as data_dir= or named by $PYRO_AIR_DATA."
        )
    return path


def load_amat(split: str, directory=None) -> torch.Tensor:
    path = _require(data_dir(directory) / f"binarized_mnist_{AMAT_SPLIT_NAMES[split]}.amat", "mnist-amat")
    try:
        array = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise DataFileError(f"{path} is truncated or corrupt ({err}); download it again") from err
    if array.shape[0] == 0 or array.shape[1] != 784:
        raise DataFileError(
            f"{path} should hold rows of 784 values, found shape {array.shape}; the file is "
            "truncated or not a binarized-MNIST .amat file"
        )
    return torch.from_numpy(array)


def _loadmat(path: Path, dataset: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises several types for a damaged file
        raise DataFileError(
            f"{path} could not be read as a MATLAB file ({type(err).__name__}: {err}); it is "
            f"truncated or corrupt: download it again from {PUBLISHED_AT[dataset]}"
        ) from err


def _key(mat: dict, key: str, path: Path) -> np.ndarray:
    """The array ``key`` as float32; refused (naming the file) if it holds text or NaN / inf pixels.

    Why refuse NaN: binarization compares a uniform draw with the grey level, and ``u < nan`` is
    False, so a NaN pixel would silently become a 0 pixel of the "data"."""
    if key not in mat:
        raise DataFileError(f"{path} has no array {key!r}; it is not the expected dataset file")
    raw = np.asarray(mat[key])
    if raw.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: array {key!r} holds {raw.dtype.name} values ({raw.dtype.kind!r} kind), not "
                            "pixel numbers; it is not the expected dataset file - download it again")
    array = raw.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataFileError(f"{path}: array {key!r} holds {int(bad.sum())} NaN or infinite values (the first at index "
                            f"{first}); the file is corrupt - download it again rather than let them become pixels")
    return array


def load_omniglot(split: str, directory=None) -> torch.Tensor:
    path = _require(data_dir(directory) / "chardata.mat", "omniglot")
    mat = _loadmat(path, "omniglot")

    def to_rows(columns: np.ndarray) -> np.ndarray:
        if columns.shape[0] != 784:
            raise DataFileError(f"{path}: expected arrays of 784 rows, got {columns.shape}")
        # Columns are images; pixels are stored column-major (as the IWAE code reads them).
        return columns.T.reshape(-1, 28, 28).reshape(-1, 784, order="F")

    if split == "test":
        grey = to_rows(_key(mat, "testdata", path))
    else:
        train = to_rows(_key(mat, "data", path))
        n_valid = min(OMNIGLOT_SPLIT[1], len(train) // 10) if len(train) < sum(OMNIGLOT_SPLIT[:2]) else OMNIGLOT_SPLIT[1]
        order = np.random.RandomState(OMNIGLOT_HOLDOUT_SEED).permutation(len(train))
        idx = order[n_valid:] if split == "train" else order[:n_valid]
        grey = train[np.sort(idx)]
    return binarize_static(np.clip(grey, 0.0, 1.0), BINARIZATION_SEEDS[split])


def load_caltech101(split: str, directory=None) -> torch.Tensor:
    path = _require(data_dir(directory) / "caltech101_silhouettes_28_split1.mat", "caltech101")
    mat = _loadmat(path, "caltech101")
    array = _key(mat, CALTECH_KEYS[split], path)
    if array.ndim != 2 or array.shape[1] != 784:
        raise DataFileError(f"{path}: {CALTECH_KEYS[split]} should be [N, 784], got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array))


def file_loader(reader):
    """A record's loader for a binary [N, 784] set read by ``reader(split, data_dir)``."""
    def load_file(split, binarize="static", train_size=None, data_dir=None, path=None):
        x = reader(split, data_dir)
        if train_size is not None and split == "train":
            x = x[torch.from_numpy(subset_indices(len(x), train_size))]
        return x

    return load_file


register(DatasetRecord("mnist-amat", file_loader(load_amat), shape=(28, 28)))
register(DatasetRecord("omniglot", file_loader(load_omniglot), shape=(28, 28)))
register(DatasetRecord("caltech101", file_loader(load_caltech101), shape=(28, 28)))
