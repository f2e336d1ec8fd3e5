"""Image shapes of flattened data: models and guides that convolve see x [B, D] as [B, C, H, W].

An image shape is (H, W) (one channel, grey levels) or (C, H, W) (C channels, e.g. 3 for RGB); the
flattened datapoint holds the channels one after another (channel-first order, as
``pyro_air.data.load_file`` lays out [N, C, H, W] and [N, H, W, C] arrays).
"""
from __future__ import annotations

import math


def image_shape_for(x_dim: int, image_shape=None, channels: bool = False) -> tuple:
    """(H, W) with H * W = x_dim: ``image_shape`` if given (checked), else the most square one
    (784 -> (28, 28), 12 -> (3, 4), a prime p -> (1, p)). With ``channels=True`` a given shape may
    also be (C, H, W) with C * H * W = x_dim."""
    if image_shape is None:
        h = max(d for d in range(1, math.isqrt(x_dim) + 1) if x_dim % d == 0)
        return h, x_dim // h
    shape = tuple(image_shape)
    lengths = (2, 3) if channels else (2,)
    if len(shape) not in lengths or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        what = "two positive integers (H, W) or three (C, H, W)" if channels else "two positive integers (H, W)"
        raise ValueError(f"image_shape must be {what}, got {image_shape!r}")
    if math.prod(shape) != x_dim:
        example = "(28, 28) for 784, (3, 32, 32) for 3072" if channels else "(28, 28) for 784"
        raise ValueError(
            f"image_shape {shape} has {math.prod(shape)} {'values' if len(shape) == 3 else 'pixels'} but x_dim is "
            f"{x_dim}; pass an image_shape whose {' * '.join('CHW'[-len(shape):])} equals x_dim (e.g. {example})"
        )
    return shape


def channels_height_width(image_shape) -> tuple:
    """(C, H, W) of an image shape (H, W) -> (1, H, W) or (C, H, W)."""
    shape = tuple(image_shape)
    return shape if len(shape) == 3 else (1, *shape)
