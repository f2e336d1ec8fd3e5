"""Your own data files (`--data`, `pyro_air.data.load_file`): `.npy` / `.npz` files of your own.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import numpy as np

from tests.errors.table import Case, cli, raised

TITLE = "Your own data files (`--data`, `pyro_air.data.load_file`)"


def _own_file_suffix(tmp, mp):
    from pyro_air import data
    (tmp / "images.csv").write_text("0,1\n")
    return raised(data.load_file, tmp / "images.csv")


def _own_file_missing(tmp, mp):
    from pyro_air import data
    return raised(data.load_file, tmp / "images.npz")


def _own_file_several_arrays(tmp, mp):
    from pyro_air import data
    np.savez(tmp / "images.npz", images=np.zeros((4, 3)), labels=np.zeros(4))
    return raised(data.load_file, tmp / "images.npz")


def _own_file_not_binarizable(tmp, mp):
    np.save(tmp / "real.npy", np.linspace(-2, 2, 40).reshape(10, 4))
    return cli("train", "--data", tmp / "real.npy", "--run-dir", tmp / "run", "--no-progress")


def _own_header_lies(tmp, mp):
    path = tmp / "images.npy"
    with open(path, "wb") as f:  # 4 KiB of data under a header declaring (10^9, 784) float64
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 9, 784)})
        f.write(b"\0" * 4000)
    return cli("train", "--data", path, "--run-dir", tmp / "run")


CASES = [
    Case("own-file-suffix", "your own data file in a format other than `.npz` / `.npy`", "DataFileError",
         "…/images.csv: pyro-air reads .npz and .npy files, not '.csv'; save your array with numpy.save(path.npy, x) "
         "or numpy.savez(path.npz, train=..., valid=..., test=...)", _own_file_suffix),
    Case("own-file-missing", "your own data file does not exist", "DataFileError",
         "data file …/images.npz not found; pass the path of a .npz or .npy file", _own_file_missing),
    Case("own-file-several-arrays", "a `.npz` file with several arrays, none named `x` or `train`", "DataFileError",
         "…/images.npz holds several arrays ['images', 'labels']; name the datapoints 'x', or store the splits as "
         "'train', 'valid', 'test'", _own_file_several_arrays),
    Case("own-file-not-binarizable", "`--data` with values outside [0, 1] and the default Bernoulli likelihood",
         "exit 2", "pyro-air: error: …/real.npy holds values in [-2, 2], which cannot be binarized for a Bernoulli "
         "likelihood; rescale them to [0, 1] or use --likelihood gaussian", _own_file_not_binarizable),
    Case("own-file-header-lies", "your own `.npy` / `.npz` whose header declares more than the file holds (e.g. a "
         "4 KiB file declaring (10^9, 784)) or than memory", "exit 2", "pyro-air: error: …/images.npy: array 'x' "
         "declares shape (1000000000, 784) of float64 (6.27e+03 GB) but the file holds 4000 bytes of it: it is "
         "truncated or its header is wrong; save the array again with numpy.save / numpy.savez", _own_header_lies),
]
