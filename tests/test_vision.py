"""torchvision datasets by name (pyro_air/data/vision.py): read from files already on disk, never
downloaded; clear errors without torchvision or without the files. torchvision itself is replaced by
fake dataset classes (the tests never need it installed)."""
import types

import numpy as np
import pytest
import torch

from pyro_air import data
from pyro_air.cli import main
from pyro_air.support import extras
from pyro_air.support.extras import MissingExtraError
from pyro_air.data import DataFileError, vision
from pyro_air.runs import load_run

RNG = np.random.RandomState(0)
GREY = (RNG.rand(50, 6, 7) * 255).astype(np.uint8)        # MNIST-like: uint8 [N, H, W]
GREY_TEST = (RNG.rand(10, 6, 7) * 255).astype(np.uint8)
RGB = (RNG.rand(40, 5, 6, 3) * 255).astype(np.uint8)       # CIFAR-like: uint8 [N, H, W, 3]
RGB_TEST = (RNG.rand(8, 5, 6, 3) * 255).astype(np.uint8)


class FakeMNIST:
    """Like torchvision.datasets.MNIST: (root, train, transform, download); files under root/FakeMNIST/raw."""
    calls = []

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        FakeMNIST.calls.append({"root": root, "train": train, "download": download})
        assert download is False, "pyro-air must never download"
        from pathlib import Path
        if not (Path(root) / type(self).__name__ / "raw").is_dir():
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        self.data = torch.from_numpy(GREY if train else GREY_TEST)
        self.targets = torch.zeros(len(self.data), dtype=torch.long)

    def __len__(self):
        return len(self.data)


class FakeCIFAR10(FakeMNIST):
    """numpy channel-last data, as torchvision's CIFAR10 holds it."""

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, train, transform, target_transform, download)
        self.data = RGB if train else RGB_TEST


class FakeSVHN:
    """A ``split`` argument and no ``data`` array: items are (PIL-like [H, W, 3] array, label) pairs."""

    def __init__(self, root, split="train", transform=None, download=False):
        assert download is False
        self.images = RGB if split == "train" else RGB_TEST

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


class FakeUnsplit:
    """One set, no split argument."""

    def __init__(self, root, download=False):
        self.data = GREY

    def __len__(self):
        return len(self.data)


class FakeNeedsKind:
    def __init__(self, root, kind, train=True, download=False):
        pass


@pytest.fixture
def fake_torchvision(monkeypatch, tmp_path):
    FakeMNIST.calls = []
    module = types.SimpleNamespace(FakeMNIST=FakeMNIST, FakeCIFAR10=FakeCIFAR10, FakeSVHN=FakeSVHN,
                                   FakeUnsplit=FakeUnsplit, FakeNeedsKind=FakeNeedsKind, some_function=len)
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda name: name == "torchvision" or real(name))
    monkeypatch.setattr(vision, "torchvision_datasets", lambda: module)
    root = tmp_path / "data"
    for name in ("FakeMNIST", "FakeCIFAR10"):
        (root / name / "raw").mkdir(parents=True)
    return root


def test_without_torchvision_the_error_says_how_to_install_it_for_this_torch(monkeypatch, tmp_path, capsys):
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda name: name != "torchvision" and real(name))
    version = torch.__version__.split("+")[0]
    with pytest.raises(MissingExtraError, match=rf"torchvision:MNIST \(torchvision's MNIST data set\) needs the "
                                                rf"optional package torchvision, which is not installed; pip install "
                                                rf"torch=={version} torchvision"):
        data.load("torchvision:MNIST", "train", data_dir=tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", "torchvision:MNIST", "--data-dir", str(tmp_path), "--run-dir", str(run)]) == 2
    assert f"pip install torch=={version} torchvision" in capsys.readouterr().err
    assert not run.exists()


def test_missing_files_say_where_to_put_them_and_nothing_is_downloaded(fake_torchvision, tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(DataFileError) as err:
        data.load("torchvision:FakeMNIST", "train", data_dir=empty)
    message = str(err.value)
    assert f"torchvision's FakeMNIST found no usable files under {empty} (Dataset not found." in message
    assert "Nothing is downloaded at run time" in message
    assert f"torchvision.datasets.FakeMNIST(root='{empty}', download=True)" in message
    assert FakeMNIST.calls and all(call["download"] is False for call in FakeMNIST.calls)


def test_unknown_and_unusable_names_are_refused(fake_torchvision):
    with pytest.raises(KeyError, match=r"torchvision.datasets has no data set 'fakemnist' \(names are "
                                       r"case-sensitive\); known: FakeCIFAR10, FakeMNIST"):
        data.load("torchvision:fakemnist", data_dir=fake_torchvision)
    with pytest.raises(KeyError, match="no data set 'some_function'"):
        data.load("torchvision:some_function", data_dir=fake_torchvision)
    with pytest.raises(DataFileError, match="needs arguments that pyro-air does not pass"):
        data.load("torchvision:FakeNeedsKind", data_dir=fake_torchvision)
    with pytest.raises(ValueError, match="names no dataset; write torchvision:NAME"):
        data.load("torchvision:", data_dir=fake_torchvision)


def test_splits_values_and_shapes(fake_torchvision):
    root = fake_torchvision
    load = lambda name, split, **kw: data.load(f"torchvision:{name}", split, data_dir=root, **kw)
    grey = torch.from_numpy(GREY.reshape(50, 42).astype(np.float32) / 255)
    train, valid = load("FakeMNIST", "train", binarize="none"), load("FakeMNIST", "valid", binarize="none")
    assert (len(train), len(valid)) == (45, 5)  # 10 % of the training set held out for validation
    rows = sorted(map(tuple, torch.cat([train, valid]).tolist()))
    assert rows == sorted(map(tuple, grey.tolist()))
    assert torch.equal(load("FakeMNIST", "test", binarize="none"),
                       torch.from_numpy(GREY_TEST.reshape(10, 42).astype(np.float32) / 255))
    assert FakeMNIST.calls[-1]["train"] is False
    binary = load("FakeMNIST", "train")  # the Bernoulli likelihood's default: statically binarized
    assert ((binary == 0) | (binary == 1)).all() and torch.equal(binary, load("FakeMNIST", "train"))
    assert len(load("FakeMNIST", "train", train_size=20)) == 20
    # channel-last RGB laid out channel-first; the split argument of SVHN-like sets; one set split 80/10/10
    cifar = load("FakeCIFAR10", "test", binarize="none")
    assert torch.equal(cifar, torch.from_numpy(RGB_TEST.transpose(0, 3, 1, 2).reshape(8, 90).astype(np.float32) / 255))
    assert torch.equal(load("FakeSVHN", "test", binarize="none"), cifar)
    assert [len(load("FakeUnsplit", s, binarize="none")) for s in ("train", "valid", "test")] == [40, 5, 5]
    assert data.dataset_shape("torchvision:FakeMNIST", data_dir=root) == (6, 7)
    assert data.dataset_shape("torchvision:FakeCIFAR10", data_dir=root) == (3, 5, 6)
    assert data.dataset_shape("torchvision:FakeSVHN", data_dir=root) == (3, 5, 6)


def test_cli_trains_a_conv_net_on_a_torchvision_set_and_evaluates_it(fake_torchvision, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "torchvision:FakeCIFAR10", "--data-dir", str(fake_torchvision),
                 "--likelihood", "continuous-bernoulli", "--net", "conv", "--epochs", "1", "--batch-size", "12",
                 "--z-dim", "2", "--hidden", "8", "--valid-num-samples", "3", "--no-progress",
                 "--run-dir", str(run)]) == 0
    model, guide, spec = load_run(run)
    assert spec["data"]["name"] == "torchvision:FakeCIFAR10" and spec["data"]["data_dir"] == str(fake_torchvision)
    assert model.decoder.image_shape == (3, 5, 6) and guide.convs[0].in_channels == 3
    assert main(["evaluate", str(run), "--num-samples", "5", "--no-progress"]) == 0
    assert "test (n=8)" in capsys.readouterr().out
