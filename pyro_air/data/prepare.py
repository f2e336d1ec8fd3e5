"""What every loader of user-supplied data does after reading: a fixed training subset and the
``binarize`` rule for grey levels (your own files, torchvision's datasets)."""
from __future__ import annotations

import torch

from pyro_air.core.validation import all_binary
from pyro_air.data.binarize import binarize_static, static_draw, static_seed
from pyro_air.data.mnist import BINARIZATION_SEEDS, subset_indices


def grey_or_binarized(x: torch.Tensor, binarize: str, split: str, where) -> torch.Tensor:
    """Your own data under ``binarize``: "static" binarizes grey levels (binary data stays as it is);
    "dynamic" / "none" keep the grey levels."""
    binary = x.numel() == 0 or all_binary(x)
    draw = static_draw(binarize)   # "static" is draw 0, "static:N" the N-th other draw
    if draw and binary:
        raise ValueError(f"binarize={binarize!r} is another static draw of grey levels, but {where} is binary already")
    if draw is not None and not binary:
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{where} holds values in [{x.min().item():.3g}, {x.max().item():.3g}], which cannot be "
                             "binarized for a Bernoulli likelihood; rescale them to [0, 1] or use --likelihood gaussian")
        return binarize_static(x.numpy(), static_seed(BINARIZATION_SEEDS[split], draw))
    return x


def training_subset(x: torch.Tensor, split: str, train_size, where) -> torch.Tensor:
    """The fixed random ``train_size`` subset of the training split (other splits as they are)."""
    if train_size is not None and split == "train":
        if train_size > len(x):
            raise ValueError(f"train_size={train_size} exceeds the {len(x)} training datapoints of {where}")
        x = x[torch.from_numpy(subset_indices(len(x), train_size))]
    return x
