"""pyro_air/storage.py: the one safe loader (weights_only) and the atomic writer that the training
loop and the zoo share."""
import pytest
import torch

from pyro_air import storage
from pyro_air.train import checkpoints


def test_a_saved_file_loads_back_and_a_directory_means_its_checkpoint(tmp_path):
    state = {"format_version": storage.FORMAT_VERSION, "x": torch.arange(3)}
    storage.atomic_save(state, tmp_path / "checkpoint.pt")
    assert torch.equal(storage.load(tmp_path)["x"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_code_a_newer_format_and_a_foreign_file_are_refused(tmp_path):
    storage.atomic_save({"format_version": storage.FORMAT_VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(storage.CheckpointError, match="newer than this pyro-air reads"):
        storage.load(tmp_path / "new.pt")
    storage.atomic_save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(storage.CheckpointError, match="not a pyro-air checkpoint"):
        storage.load(tmp_path / "foreign.pt")
    torch.save({"format_version": 2, "f": torch.nn.Linear(1, 1)}, tmp_path / "code.pt")  # a module: pickled code
    with pytest.raises(storage.CheckpointError, match="not a readable checkpoint"):
        storage.load(tmp_path / "code.pt")


def test_the_training_package_names_the_same_loader():
    assert checkpoints.load is storage.load and checkpoints.CheckpointError is storage.CheckpointError
    assert checkpoints.atomic_save is storage.atomic_save and checkpoints.FORMAT_VERSION == storage.FORMAT_VERSION
