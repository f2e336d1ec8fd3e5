"""The consistency-regularized encoder (CR-VAE; Sinha & Dieng, NeurIPS 2021).

A semantics-preserving random transformation t(x~ | x) of the input (for images: a translation by a
few pixels, a small rotation) should not move the encoder's posterior. CR-VAE penalizes

    R(phi; x) = E_{x~ ~ t(x~ | x)} KL( q_phi(z | x~) || q_phi(z | x) )                   (CR-VAE, Eq. 3)

and trains  max  L(x) - lambda * R(phi; x)  (their Eq. 4 also adds the ELBO of the augmented x~,
i.e. data augmentation of the *model*; that term is left out here, so that what is measured is the
regularization of the encoder alone). R depends only on the encoder: the penalty is a regularizer
on phi, not part of q(z | x).

How it enters the loss. ``ConsistencyEncoder`` wraps any amortized encoder with a diagonal Gaussian
q(z | x) and leaves its q untouched (``forward`` and the direct scoring are the wrapped encoder's):
it only adds ``penalty(x) -> Tensor[B]``, one draw of x~ per datapoint and the closed-form Gaussian
KL. The objective wrapper ``pyro_air.infer.ConsistencyRegularized(objective, weight)`` adds
``weight * (N / B) * sum_b penalty_b`` to the wrapped objective's loss, so the penalty trains
through ``pyro_air.train.fit`` and ``pyro.infer.SVI`` alike; with weight 0 it is the plain objective.

Transformations (``transform``): ``"shift"`` - a uniform integer translation in
[-max_shift, max_shift]^2 pixels per datapoint, zero fill (what CR-VAE uses for MNIST); ``"affine"`` -
a rotation by a uniform angle in [-max_degrees, max_degrees] and a real-valued translation, bilinear
interpolation (grey values: only the encoder sees x~); ``"identity"`` - x~ = x (R = 0 exactly for a
deterministic encoder); or any callable mapping a [B, D] batch to a [B, D] batch.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from pyro_air.core.validation import check_batch, check_positive, check_positive_int
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.registry import GUIDES, build_encoder

TRANSFORMS = ("shift", "affine", "identity")


def check_wrappable(encoder, wrapper: str, example: str) -> AmortizedGuide:
    """``encoder`` must be an ``AmortizedGuide`` that has not run yet (so Pyro can name its
    parameters under the wrapper)."""
    if not isinstance(encoder, AmortizedGuide):
        raise TypeError(f"{wrapper} wraps an AmortizedGuide (e.g. GaussianEncoder), got {type(encoder).__name__}; "
                        f"build the encoder first, e.g. {example}")
    if getattr(getattr(encoder, "_pyro_context", None), "used", False):
        raise ValueError(f"the {type(encoder).__name__} has already run on its own, so Pyro cannot rename its "
                         f"parameters under the {wrapper} wrapper; wrap the encoder before its first use")
    return encoder


def diagonal_normal(q) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, scale) [B, z] of a diagonal Gaussian q(z | x) (``Normal(...).to_event(1)``)."""
    base = q.base_dist if isinstance(q, dist.Independent) else q
    if not isinstance(base, dist.Normal):
        raise TypeError(f"this wrapper needs an encoder whose q(z | x) is a diagonal Gaussian (Normal.to_event(1)); "
                        f"got {type(base).__name__}")
    return base.loc, base.scale


def gaussian_kl(loc_p, scale_p, loc_q, scale_q) -> torch.Tensor:
    """KL(N(loc_p, diag scale_p^2) || N(loc_q, diag scale_q^2)), summed over the last dimension:
    sum_j [ log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2 ]."""
    var_p, var_q = scale_p ** 2, scale_q ** 2
    return (scale_q.log() - scale_p.log() + (var_p + (loc_p - loc_q) ** 2) / (2 * var_q) - 0.5).sum(-1)


def image_side(x_dim: int, image_shape) -> tuple[int, int]:
    if image_shape is None:
        side = math.isqrt(x_dim)
        if side * side != x_dim:
            raise ValueError(f"x_dim={x_dim} is not a square image; give image_shape=(height, width) with "
                             f"height * width = {x_dim}, or use transform='identity' or a callable")
        return side, side
    h, w = (check_positive_int(int(s), "image_shape entries") for s in image_shape)
    if h * w != x_dim:
        raise ValueError(f"image_shape={tuple(image_shape)} has {h * w} pixels but x_dim={x_dim}; "
                         "height * width must equal x_dim")
    return h, w


def random_affine(x: torch.Tensor, shape: tuple[int, int], max_shift: float, max_degrees: float,
                  integer: bool) -> torch.Tensor:
    """x [B, H*W] moved by a random rotation and translation per datapoint (zero fill).

    ``integer``: shifts are whole pixels and there is no rotation; nearest-neighbour sampling at
    exact pixel centres then moves the pixel values without changing them."""
    b = x.shape[0]
    h, w = shape
    if integer:
        m = int(max_shift)
        dy = torch.randint(-m, m + 1, (b,), device=x.device).to(x.dtype)
        dx = torch.randint(-m, m + 1, (b,), device=x.device).to(x.dtype)
        angle = torch.zeros(b, dtype=x.dtype, device=x.device)
    else:
        dy = (torch.rand(b, dtype=x.dtype, device=x.device) * 2 - 1) * max_shift
        dx = (torch.rand(b, dtype=x.dtype, device=x.device) * 2 - 1) * max_shift
        angle = (torch.rand(b, dtype=x.dtype, device=x.device) * 2 - 1) * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    # grid_sample maps output coordinates to input coordinates (normalized to [-1, 1]): moving the
    # image by +d pixels samples the input at (output - d); a pixel is 2 / size normalized units.
    theta = torch.stack([torch.stack([cos, -sin, -2 * dx / w], -1),
                         torch.stack([sin, cos, -2 * dy / h], -1)], -2)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    moved = F.grid_sample(x.reshape(b, 1, h, w), grid, mode="nearest" if integer else "bilinear",
                          padding_mode="zeros", align_corners=False)
    return moved.reshape(b, h * w)


class ConsistencyEncoder(AmortizedGuide):
    """``encoder`` with the CR-VAE consistency penalty ``penalty(x)`` (module docstring); q is unchanged.

    ``transform``: "shift" (default; ``max_shift`` pixels), "affine" (``max_degrees`` and
    ``max_shift``), "identity", or a callable [B, D] -> [B, D]. ``image_shape``: (height, width) of
    the flattened images (default: square). The weight lambda lives in the objective wrapper
    ``pyro_air.infer.ConsistencyRegularized``.
    """

    def __init__(self, encoder: AmortizedGuide, transform="shift", max_shift: float = 2.0,
                 max_degrees: float = 15.0, image_shape=None):
        check_wrappable(encoder, "ConsistencyEncoder", "ConsistencyEncoder(GaussianEncoder(784, 50))")
        super().__init__(encoder.x_dim, encoder.z_dim)
        self.encoder = encoder
        if callable(transform):
            self.transform_name, self.transform_fn, self.image_shape = getattr(transform, "__name__", "callable"), \
                transform, None
        elif transform in TRANSFORMS:
            self.transform_name, self.transform_fn = transform, None
            self.image_shape = None if transform == "identity" else image_side(encoder.x_dim, image_shape)
        else:
            raise ValueError(f"unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)} or a callable "
                             "[B, D] -> [B, D]")
        self.max_shift = check_positive(max_shift, "max_shift (pixels)", allow_zero=True)
        self.max_degrees = check_positive(max_degrees, "max_degrees", allow_zero=True)
        if transform == "shift" and self.max_shift != int(self.max_shift):
            raise ValueError(f"transform='shift' moves whole pixels; max_shift must be an integer, got {max_shift!r} "
                             "(use transform='affine' for sub-pixel shifts)")

    # -- q(z | x): exactly the wrapped encoder's --------------------------------------------------
    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        return self.encoder.posterior(self.encoder.encoder_input(x))

    def direct_posterior(self, x: torch.Tensor):
        return self.encoder.direct_posterior(x)

    def supports_direct_scoring(self) -> bool:
        return super().supports_direct_scoring() and self.encoder.supports_direct_scoring()

    def forward(self, x: torch.Tensor, num_data: int | None = None):
        if self.validate_inputs:
            check_batch(x, self.x_dim, type(self).__name__)
        return self.encoder(x, num_data=num_data)

    # -- the regularizer ------------------------------------------------------------------------
    def transformed(self, x: torch.Tensor) -> torch.Tensor:
        """One draw x~ ~ t(x~ | x) per datapoint, [B, D]."""
        if self.transform_fn is not None:
            out = self.transform_fn(x)
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                raise ValueError(f"the transform must return a tensor of the input's shape {list(x.shape)}, got "
                                 f"{getattr(out, 'shape', type(out).__name__)}")
            return out
        if self.transform_name == "identity":
            return x
        return random_affine(x, self.image_shape, self.max_shift, self.max_degrees,
                             integer=self.transform_name == "shift")

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        """R(phi; x_b) per datapoint, Tensor[B]: KL(q(z | x~_b) || q(z | x_b)) for one x~_b ~ t(. | x_b)."""
        loc, scale = diagonal_normal(self.posterior(x))
        loc_t, scale_t = diagonal_normal(self.posterior(self.transformed(x)))
        return gaussian_kl(loc_t, scale_t, loc, scale)

    def extra_repr(self) -> str:
        return f"transform={self.transform_name}, max_shift={self.max_shift}, max_degrees={self.max_degrees}"


@GUIDES.register("consistency")
def consistency(encoder="gaussian", transform="shift", max_shift: float = 2.0, max_degrees: float = 15.0,
                image_shape=None, **encoder_cfg) -> ConsistencyEncoder:
    """Registry builder: ``encoder`` is a guide name (``encoder_cfg`` its options), a dict or an instance."""
    return ConsistencyEncoder(build_encoder(encoder, encoder_cfg), transform, max_shift, max_degrees, image_shape)
