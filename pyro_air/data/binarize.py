"""Binarization of grey-level images in [0, 1].

Static binarization draws each pixel once, x_bin ~ Bernoulli(x_grey), with a fixed seed, so
every run and every machine sees the same binary dataset. Dynamic binarization redraws the
pixels every time a batch is used (see ``pyro_air.train``).

Other static draws of the same grey images (mode ``"static:N"``; ``"static"`` = ``"static:0"``) use
seed ``base + STATIC_DRAW_STRIDE * N``, ``base`` the split's seed of draw 0 (MNIST: 0 / 1 / 2 for
train / valid / test), so no two (split, draw) pairs share a seed and draw 0 is the dataset as it
always was. Used to measure how much a result depends on which static draw it was trained on.
"""
from __future__ import annotations

import numpy as np
import torch


STATIC = "static"
STATIC_DRAW_STRIDE = 3  # the number of splits: draw N of the splits uses seeds 3N, 3N + 1, 3N + 2


def static_draw(mode) -> int | None:
    """The draw number of a static binarization mode ("static" -> 0, "static:N" -> N), else None."""
    if mode == STATIC:
        return 0
    if isinstance(mode, str) and mode.startswith(STATIC + ":"):
        number = mode[len(STATIC) + 1:]
        if number.isdigit():
            return int(number)
    return None


def static_seed(base_seed: int, draw: int) -> int:
    """The seed of static draw ``draw`` of a split whose draw 0 has seed ``base_seed``."""
    return base_seed + STATIC_DRAW_STRIDE * draw


def binarize_static(grey: np.ndarray, seed: int) -> torch.Tensor:
    """Bernoulli(grey) draws with numpy's legacy ``RandomState(seed)`` (stable across versions)."""
    rng = np.random.RandomState(seed)
    uniform = rng.uniform(size=grey.shape).astype(np.float32)
    return torch.from_numpy((uniform < grey).astype(np.float32))


def binarize_dynamic(grey: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli(grey) draw (used once per batch when training with dynamic binarization)."""
    return torch.bernoulli(grey, generator=generator)
