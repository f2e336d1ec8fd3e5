"""Binarization of grey-level images in [0, 1].

Static binarization draws each pixel once, x_bin ~ Bernoulli(x_grey), with a fixed seed, so
every run and every machine sees the same binary dataset. Dynamic binarization redraws the
pixels every time a batch is used (see ``pyro_air.train``).
"""
from __future__ import annotations

import numpy as np
import torch


def binarize_static(grey: np.ndarray, seed: int) -> torch.Tensor:
    """Bernoulli(grey) draws with numpy's legacy ``RandomState(seed)`` (stable across versions)."""
    rng = np.random.RandomState(seed)
    uniform = rng.uniform(size=grey.shape).astype(np.float32)
    return torch.from_numpy((uniform < grey).astype(np.float32))


def binarize_dynamic(grey: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli(grey) draw (used once per batch when training with dynamic binarization)."""
    return torch.bernoulli(grey, generator=generator)
