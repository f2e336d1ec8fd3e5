"""pyro_air/data/records.py: every dataset is a record (name, shape, splits, grey levels, training-split
size) registered where it is defined, and load / dataset_shape read it instead of special-casing names."""
import pytest
import torch

from pyro_air import data
from pyro_air.data.records import SPLITS, DatasetRecord


def test_every_registered_dataset_is_a_record_under_its_name():
    for name in data.DATASETS.names():
        record = data.DATASETS.get(name)
        assert isinstance(record, DatasetRecord) and record.name == name and record.splits == SPLITS
    assert data.DATASETS.get("mnist").grey_levels and data.DATASETS.get("file").grey_levels
    assert not any(data.DATASETS.get(n).grey_levels for n in ("mnist-amat", "omniglot", "caltech101"))
    assert data.DATASETS.get("mnist").train_images == 50000


def test_a_new_dataset_is_one_record(monkeypatch):
    """Registering a record is all a new dataset needs: load, its shape and its refusals follow from it."""
    def load(split, binarize="static", train_size=None, data_dir=None, path=None):
        return torch.ones(7 if split == "train" else 3, 6)

    record = DatasetRecord("probe-set", load, shape=(2, 3), train_images=7)
    monkeypatch.setitem(data.DATASETS._builders, record.name, record)  # registered for this test only
    assert data.load("probe-set", "valid").shape == (3, 6)
    assert data.dataset_shape("probe-set") == (2, 3)
    with pytest.raises(ValueError, match="exceeds the 7 training images of probe-set"):
        data.load("probe-set", train_size=8)
    with pytest.raises(ValueError, match="needs grey levels; only 'file' and 'mnist'"):
        data.load("probe-set", binarize="dynamic")
