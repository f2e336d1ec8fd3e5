"""Loaders: the embedded MNIST and the user-supplied file formats (written here, small)."""
import gzip
import hashlib
import pickle

import numpy as np
import pytest
import scipy.io
import torch

from pyro_air import data
from pyro_air.data.errors import DataFileError
from pyro_air.data.mnist import MNIST_SHA256, mnist_pickle_path, read_mnist_pickle, subset_indices
from pyro_air.data.safe_pickle import UnsafePickleError, load_numpy_pickle


def test_embedded_mnist_split_sizes_and_checksum():
    path = mnist_pickle_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MNIST_SHA256
    sizes = {s: data.load("mnist", s).shape for s in data.SPLITS}
    assert sizes == {"train": (50000, 784), "valid": (10000, 784), "test": (10000, 784)}
    x = data.load("mnist", "test")
    assert x.dtype == torch.float32 and set(x.unique().tolist()) == {0.0, 1.0}
    assert 0.1 < x.mean().item() < 0.2  # MNIST's ink fraction


def test_static_binarization_is_fixed_and_subsets_are_nested():
    a = data.load("mnist", "valid")
    b = data.load("mnist", "valid")
    assert torch.equal(a, b)
    small, large = data.load("mnist", train_size=500), data.load("mnist", train_size=2000)
    assert small.shape == (500, 784) and torch.equal(small, large[:500])
    grey = data.load("mnist", "test", binarize="dynamic")
    assert grey.min() >= 0 and grey.max() <= 1 and len(grey.unique()) > 2


def test_tampered_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this would run code",))

    payload = pickle.dumps((Evil(), None, None), protocol=2)
    with pytest.raises(UnsafePickleError, match="only numpy arrays"):
        load_numpy_pickle(payload)
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DataFileError, match="SHA-256"):
        read_mnist_pickle(path)  # wrong checksum is caught before unpickling
    with pytest.raises(UnsafePickleError):
        read_mnist_pickle(path, expected_sha256=None)


def test_numpy_pickle_roundtrip():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2]))
    out = load_numpy_pickle(pickle.dumps(arrays, protocol=2))
    assert np.array_equal(out[0], arrays[0]) and np.array_equal(out[1], arrays[1])


def _write_amat(directory, n_rows):
    rng = np.random.RandomState(0)
    written = {}
    for split in ("train", "valid", "test"):
        rows = (rng.uniform(size=(n_rows, 784)) < 0.2).astype(int)
        np.savetxt(directory / f"binarized_mnist_{split}.amat", rows, fmt="%d")
        written[split] = rows
    return written


def test_amat_loader_reads_generated_files(tmp_path, monkeypatch):
    written = _write_amat(tmp_path, 7)
    x = data.load("mnist-amat", "valid", data_dir=tmp_path)
    assert x.shape == (7, 784) and np.array_equal(x.numpy(), written["valid"])
    monkeypatch.setenv("PYRO_AIR_DATA", str(tmp_path))
    assert torch.equal(data.load("mnist-amat", "test"), torch.tensor(written["test"], dtype=torch.float32))


def test_truncated_amat_is_a_clear_error(tmp_path):
    _write_amat(tmp_path, 3)
    path = tmp_path / "binarized_mnist_train.amat"
    path.write_text(path.read_text()[:1000])
    with pytest.raises(DataFileError, match="truncated"):
        data.load("mnist-amat", "train", data_dir=tmp_path)


def test_omniglot_loader_splits_and_binarizes(tmp_path):
    rng = np.random.RandomState(1)
    train_cols, test_cols = rng.uniform(size=(784, 40)), rng.uniform(size=(784, 9))
    scipy.io.savemat(tmp_path / "chardata.mat", {"data": train_cols, "testdata": test_cols})
    train = data.load("omniglot", "train", data_dir=tmp_path)
    valid = data.load("omniglot", "valid", data_dir=tmp_path)
    test = data.load("omniglot", "test", data_dir=tmp_path)
    assert len(train) + len(valid) == 40 and len(test) == 9 and len(valid) > 0
    assert set(torch.cat([train, valid, test]).unique().tolist()) <= {0.0, 1.0}
    # pixel order: image i is column i, read column-major into 28 x 28
    img0 = test_cols[:, 0].reshape(28, 28).reshape(784, order="F")
    assert np.corrcoef(img0, test[0].numpy())[0, 1] > 0.5


def test_caltech_loader(tmp_path):
    rng = np.random.RandomState(2)
    arrays = {k: (rng.uniform(size=(n, 784)) < 0.5).astype(np.float64)
              for k, n in (("train_data", 11), ("val_data", 5), ("test_data", 6))}
    scipy.io.savemat(tmp_path / "caltech101_silhouettes_28_split1.mat", arrays)
    for split, key in (("train", "train_data"), ("valid", "val_data"), ("test", "test_data")):
        x = data.load("caltech101", split, data_dir=tmp_path)
        assert np.array_equal(x.numpy(), arrays[key].astype(np.float32))


@pytest.mark.parametrize("name,filename", [
    ("mnist-amat", "binarized_mnist_train.amat"),
    ("omniglot", "chardata.mat"),
    ("caltech101", "caltech101_silhouettes_28_split1.mat"),
])
def test_missing_file_names_the_file_and_where_it_is_published(tmp_path, name, filename):
    with pytest.raises(DataFileError, match=filename) as info:
        data.load(name, "train", data_dir=tmp_path)
    assert "Download" in str(info.value)


def test_corrupt_mat_file_is_a_clear_error(tmp_path):
    (tmp_path / "chardata.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(DataFileError, match="corrupt"):
        data.load("omniglot", "train", data_dir=tmp_path)


def test_unknown_dataset_split_and_mode():
    with pytest.raises(KeyError, match="known datasets are: .*mnist"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "validation")
    with pytest.raises(ValueError, match="binarize"):
        data.load("mnist", binarize="threshold")
    with pytest.raises(ValueError, match="train_size"):
        data.load("mnist", train_size=0)


def test_a_second_static_draw_is_other_pixels_of_the_same_images():
    """"static:N" (pyro_air.data.binarize): draw 0 is the dataset as always; draw 1 is another
    Bernoulli(grey) draw of the same images (seed base + 3), fixed, nested like draw 0."""
    base = data.load("mnist", "test")
    assert torch.equal(data.load("mnist", "test", binarize="static:0"), base)
    other = data.load("mnist", "test", binarize="static:1")
    assert torch.equal(other, data.load("mnist", "test", binarize="static:1"))
    assert not torch.equal(other, base)
    grey = data.load("mnist", "test", binarize="none")
    assert torch.equal(other, data.binarize_static(grey.numpy(), 2 + 3))
    assert abs(other.mean().item() - base.mean().item()) < 2e-3  # the same ink: another draw of it
    assert torch.equal(data.load("mnist", train_size=500, binarize="static:1"),
                       data.load("mnist", binarize="static:1")[subset_indices(50000, 500)])
    with pytest.raises(ValueError, match="static:N"):
        data.load("mnist", binarize="static:x")


def test_a_second_static_draw_needs_grey_levels(tmp_path):
    np.save(tmp_path / "binary.npy", np.eye(20, 4, dtype=np.float32))
    with pytest.raises(ValueError, match="binary already"):
        data.load("file", "train", binarize="static:1", path=tmp_path / "binary.npy")
    with pytest.raises(ValueError, match="needs grey levels"):
        data.load("omniglot", "train", binarize="static:1", data_dir=tmp_path)
