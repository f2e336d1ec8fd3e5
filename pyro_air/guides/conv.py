"""A convolutional Gaussian encoder, and the delta-VAE's committed rate as an option of it.

q(z | x) = N(mu(x), diag sigma(x)^2) with (mu, log-scale features) from strided convolutions
(kernel 3, stride 2, padding 1; ReLU) over the image x reshaped to [C, H, W] (``image_shape`` (H, W)
for one channel or (C, H, W), e.g. RGB; channel-first order), then one hidden fully connected
layer; the same Gaussian family as ``GaussianEncoder`` (Kingma & Welling 2014), so it fits every
model with the same x_dim and z_dim (the MLP ``bernoulli-vae`` as well as the ``pixelcnn-vae``).
Images of any H x W work (a 1 x 1 image stays 1 x 1 through the strides); ``image_shape``
defaults to the most square one-channel factorization of x_dim.

Committed rate (Razavi, Oord, Poole & Vinyals 2019, "Preventing Posterior Collapse with
delta-VAEs", section 2.1): restricting the posterior family so that it can never equal the prior
guarantees KL(q(z | x) || p(z)) >= delta for every x, whatever the decoder does. With the prior
N(0, 1) per dimension and a posterior scale bounded above by sigma_u < 1,

    KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1 - log sigma^2) / 2
                                 >= (sigma_u^2 - 1 - log sigma_u^2) / 2  =: delta     (sigma <= sigma_u)

because s - 1 - log s decreases on (0, 1]. ``committed_rate=delta`` (nats per latent dimension)
solves this for sigma_u and maps the encoder's raw scale output r to
sigma = min_scale + (sigma_u - min_scale) sigmoid(r), so the rate is at least delta * z_dim.

Direct scoring: like ``GaussianEncoder``, ``direct_posterior`` returns the (loc, scale) tensors as
a ``DiagonalNormalPosterior`` (bit-identical to sampling and scoring ``posterior``'s objects) while
``posterior`` and ``loc_scale`` are the ones written here.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.support.images import channels_height_width, image_shape_for
from pyro_air.backend.nets import activation as make_activation
from pyro_air.backend.nets import softplus_scale
from pyro_air.core.scoring import (
    DiagonalNormalPosterior,
    keeps,
    specialized_scoring_enabled,
)
from pyro_air.core.validation import check_hidden, check_positive, check_positive_int
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.registry import GUIDES

MIN_SCALE = 1e-4


def committed_rate_max_scale(delta: float) -> float:
    """sigma_u in (0, 1) with (sigma_u^2 - 1 - log sigma_u^2) / 2 = delta (module docstring)."""
    delta = check_positive(delta, "committed_rate (delta, nats per latent dimension)")
    if delta > 10.0:
        raise ValueError(f"committed_rate must be at most 10 nats per dimension (sigma_u would be below "
                         f"{math.exp(-10.5):.1e}), got {delta!r}; pick a rate such as 0.1 - 2")
    lo, hi = 1e-12, 1.0               # g(s) = s - 1 - log s - 2 delta decreases from +inf to -2 delta on (0, 1]
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid - 1 - math.log(mid) > 2 * delta:
            lo = mid
        else:
            hi = mid
    return math.sqrt((lo + hi) / 2)


@GUIDES.register("conv-gaussian", hidden=True, image=True)
class ConvGaussianEncoder(AmortizedGuide):
    """q(z | x) = N(mu(x), diag sigma(x)^2) from a strided CNN (module docstring)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 10, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu", committed_rate: float | None = None):
        super().__init__(x_dim, z_dim)
        self.image_shape = image_shape_for(self.x_dim, image_shape, channels=True)
        self.input_shape = channels_height_width(self.image_shape)  # (C, H, W)
        self.channels = check_hidden(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one convolution, e.g. channels=(16, 32)")
        self.hidden = check_positive_int(hidden, "hidden")
        layers, c_in = [], self.input_shape[0]
        for c in self.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), make_activation(activation)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *self.input_shape)).numel()
        self.features = nn.Sequential(nn.Linear(flat, self.hidden), make_activation(activation))
        self.head = nn.Linear(self.hidden, 2 * self.z_dim)
        self.committed_rate = None if committed_rate is None else float(committed_rate)
        self.max_scale = None if committed_rate is None else committed_rate_max_scale(committed_rate)

    def loc_scale(self, x: torch.Tensor):
        n = x.shape[:-1]
        h = self.convs(x.reshape(-1, *self.input_shape)).flatten(1)
        loc, raw_scale = self.head(self.features(h)).reshape(*n, 2 * self.z_dim).chunk(2, dim=-1)
        if self.max_scale is None:
            return loc, softplus_scale(raw_scale, MIN_SCALE)
        return loc, MIN_SCALE + (self.max_scale - MIN_SCALE) * torch.sigmoid(raw_scale)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        loc, scale = self.loc_scale(x)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)

    def direct_posterior(self, x: torch.Tensor):
        """q(z | x) for the batch as tensors (module docstring), or the generic object."""
        if not (specialized_scoring_enabled()
                and keeps(type(self), ConvGaussianEncoder, "posterior", "loc_scale")):
            return super().direct_posterior(x)
        return DiagonalNormalPosterior(*self.loc_scale(self.encoder_input(x)))
