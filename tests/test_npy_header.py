"""A .npy / .npz header is checked before numpy allocates what it declares (pyro_air/data/npy_header.py)."""
import numpy as np
import pytest

from pyro_air.cli import main
from pyro_air.data.errors import DataFileError
from pyro_air.data.npy_header import check_declared_sizes, declared_arrays


def lying_npy(path, shape, data_bytes=4000):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        f.write(b"\0" * data_bytes)
    return path


def test_a_header_declaring_more_than_the_file_holds_is_one_line(tmp_path, capsys):
    path = lying_npy(tmp_path / "x.npy", (10 ** 9, 784))
    with pytest.raises(DataFileError) as info:
        check_declared_sizes(path)
    assert str(info.value) == (f"{path}: array 'x' declares shape (1000000000, 784) of float64 (6.27e+03 GB) but the "
                               "file holds 4000 bytes of it: it is truncated or its header is wrong; save the array "
                               "again with numpy.save / numpy.savez")
    assert main(["train", "--data", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "declares shape (1000000000, 784)" in err and not (tmp_path / "run").exists()


def test_a_header_declaring_more_than_memory_is_refused(tmp_path, monkeypatch):
    from pyro_air.data import npy_header

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((100, 8)))
    monkeypatch.setattr(npy_header, "physical_memory", lambda: 1000)  # a machine with 1000 bytes
    with pytest.raises(DataFileError, match=r"declares shape \(100, 8\) of float64 \(6.4e-06 GB\), more than this "
                                            r"machine's 1e-06 GB of memory; train on a subset"):
        check_declared_sizes(path)


def test_good_files_and_npz_members_pass_with_their_sizes(tmp_path):
    np.savez(tmp_path / "d.npz", train=np.zeros((10, 4), np.float32), test=np.ones((3, 4), np.uint8))
    arrays = {name: (shape, declared, held) for name, shape, _, declared, held in declared_arrays(tmp_path / "d.npz")}
    assert arrays == {"train": ((10, 4), 160, 160), "test": ((3, 4), 12, 12)}
    check_declared_sizes(tmp_path / "d.npz")
    np.save(tmp_path / "x.npy", np.zeros(5))
    check_declared_sizes(tmp_path / "x.npy")
    check_declared_sizes(tmp_path / "missing.npy")  # left to the loader, which names the problem


def test_the_python_loader_checks_the_header_too(tmp_path):
    from pyro_air import data

    path = lying_npy(tmp_path / "x.npy", (10 ** 9, 784))
    for call in (lambda: data.load("file", "train", path=path), lambda: data.dataset_shape("file", path=path)):
        with pytest.raises(DataFileError, match=r"declares shape \(1000000000, 784\) of float64"):
            call()
