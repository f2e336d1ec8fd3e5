"""The one data plate that models and guides share (docs/design.md, contract 1)."""
from __future__ import annotations

import pyro
import torch

from pyro_air.core.validation import check_positive_int

DATA_PLATE = "data"


def data_plate(x: torch.Tensor, num_data: int | None = None) -> pyro.plate:
    """``pyro.plate("data", N, subsample=x)`` at dim -1.

    The batch ``x`` is the plate's subsample, so every site inside is scaled by N / B with
    N = ``num_data`` (or B when it is None) and no random indices are drawn.
    """
    return pyro.plate(DATA_PLATE, data_size(x, num_data), subsample=x, dim=-1)


def data_size(x: torch.Tensor, num_data: int | None = None) -> int:
    """The data plate's size N: ``num_data``, or the batch size when it is None; N >= B."""
    size = x.shape[0] if num_data is None else check_positive_int(num_data, "num_data")
    if size < x.shape[0]:
        raise ValueError(f"num_data={size} is smaller than the batch ({x.shape[0]}); pass the dataset size")
    return size
