"""Image shapes of flattened data: models and guides that convolve see x [B, H * W] as [B, 1, H, W]."""
from __future__ import annotations

import math


def image_shape_for(x_dim: int, image_shape=None) -> tuple:
    """(H, W) with H * W = x_dim: ``image_shape`` if given (checked), else the most square one
    (784 -> (28, 28), 12 -> (3, 4), a prime p -> (1, p))."""
    if image_shape is None:
        h = max(d for d in range(1, math.isqrt(x_dim) + 1) if x_dim % d == 0)
        return h, x_dim // h
    shape = tuple(image_shape)
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"image_shape must be two positive integers (H, W), got {image_shape!r}")
    if shape[0] * shape[1] != x_dim:
        raise ValueError(
            f"image_shape {shape} has {shape[0] * shape[1]} pixels but x_dim is {x_dim}; "
            "pass an image_shape whose H * W equals x_dim (e.g. (28, 28) for 784)"
        )
    return shape
