"""Data files: the built-in datasets' files.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import gzip
import pickle

import numpy as np

from tests.errors.table import Case, raised

TITLE = "Data files"


def _unknown_dataset(tmp, mp):
    from pyro_air import data
    return raised(data.load, "cifar")


def _missing_file(tmp, mp):
    from pyro_air import data
    return raised(data.load, "mnist-amat", "train", data_dir=tmp)


def _truncated_amat(tmp, mp):
    from pyro_air import data
    (tmp / "binarized_mnist_train.amat").write_text("0 1 0\n1 1")
    return raised(data.load, "mnist-amat", "train", data_dir=tmp)


def _corrupt_mat(tmp, mp):
    from pyro_air import data
    (tmp / "chardata.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    return raised(data.load, "omniglot", "train", data_dir=tmp)


def _caltech(tmp, train_data):
    import scipy.io

    from pyro_air import data
    blank = np.zeros((3, 784), dtype=np.float32)
    scipy.io.savemat(tmp / "caltech101_silhouettes_28_split1.mat",
                     {"train_data": train_data, "val_data": blank, "test_data": blank})
    return raised(data.load, "caltech101", "train", data_dir=tmp)


def _nan_mat(tmp, mp):
    pixels = np.zeros((5, 784), dtype=np.float32)
    pixels[2, 10] = pixels[4, 0] = np.nan
    return _caltech(tmp, pixels)


def _text_mat(tmp, mp):
    return _caltech(tmp, np.array(["not", "pixels"]))


def _truncated_pickle(tmp, mp):
    from pyro_air.data.mnist import mnist_pickle_path, read_mnist_pickle
    path = tmp / "mnist.pkl.gz"
    path.write_bytes(mnist_pickle_path().read_bytes()[:5000])
    return raised(read_mnist_pickle, path, expected_sha256=None)


def _tampered_pickle(tmp, mp):
    from pyro_air.data.safe_pickle import load_numpy_pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this would run code",))

    payload = pickle.dumps((Evil(), None, None), protocol=2)
    (tmp / "mnist.pkl.gz").write_bytes(gzip.compress(payload))
    return raised(load_numpy_pickle, payload)


CASES = [
    Case("unknown-dataset", "unknown dataset name", "KeyError",
         "unknown dataset 'cifar'; known datasets are: …. Pick one of these names.",
         _unknown_dataset),
    Case("missing-data-file", "a missing data file", "DataFileError",
         "mnist-amat: file …/binarized_mnist_train.amat not found. Download binarized_mnist_train.amat from "
         "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ and put it in a directory passed as "
         "data_dir= or named by $PYRO_AIR_DATA.", _missing_file),
    Case("truncated-amat", "a truncated `.amat` file", "DataFileError",
         "…/binarized_mnist_train.amat is truncated or corrupt (…); download it again", _truncated_amat),
    Case("corrupt-mat", "a corrupt `.mat` file", "DataFileError",
         "…/chardata.mat could not be read as a MATLAB file (…); it is truncated or corrupt: download it again from "
         "https://github.com/yburda/iwae/tree/master/datasets/OMNIGLOT (chardata.mat)", _corrupt_mat),
    Case("nan-in-mat", "NaN or inf pixels in a `.mat` file", "DataFileError",
         "…/caltech101_silhouettes_28_split1.mat: array 'train_data' holds 2 NaN or infinite values (the first at "
         "index (2, 10)); the file is corrupt - download it again rather than let them become pixels", _nan_mat),
    Case("text-in-mat", "a `.mat` file whose array holds text", "DataFileError",
         "…/caltech101_silhouettes_28_split1.mat: array 'train_data' holds str… values ('U' kind), not pixel "
         "numbers; it is not the expected dataset file - download it again", _text_mat),
    Case("truncated-mnist-pickle", "a truncated MNIST pickle", "DataFileError",
         "…/mnist.pkl.gz is not a readable gzip file (Compressed file ended before the end-of-stream marker was "
         "reached); reinstall it", _truncated_pickle),
    Case("tampered-pickle", "a pickle holding anything but numpy arrays", "UnsafePickleError",
         "refusing to load __builtin__.print from a pickle: only numpy arrays are allowed. The file is not the expected "
         "dataset; reinstall it from its published source.", _tampered_pickle),
]
