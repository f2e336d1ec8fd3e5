"""Seeds derived from a base seed and integer keys, and a context that draws from one.

``derive_seed(seed, *keys)`` hashes the tuple (seed, *keys) with NumPy's ``SeedSequence`` into a
32-bit seed (valid for torch, NumPy and Python alike), so streams keyed by (seed, epoch),
(seed, batch index) or (seed, rank) are independent of each other and the same in every process
that asks for them. Evaluation uses one
such stream per datapoint batch, so a batch scored by any process of a distributed run draws the
very samples a single process draws for it.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed determined by (seed, *keys); different keys give independent streams."""
    entropy = [int(seed), *(int(k) for k in keys)]
    if any(v < 0 for v in entropy):
        raise ValueError(f"seeds and keys must be non-negative integers, got {entropy}")
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0])


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None):
    """Inside: torch's global RNG (and ``device``'s, on CUDA) seeded with ``seed``; restored after.

    ``seed=None`` changes nothing: the caller's stream is used and advanced as usual.
    """
    if seed is None:
        yield
        return
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
