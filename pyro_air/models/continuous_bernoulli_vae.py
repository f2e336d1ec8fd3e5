"""A VAE for grey-level images: p(z) = N(0, I), p(x | z) = ContinuousBernoulli(logits = MLP(z)).

Loaiza-Ganem & Cunningham (2019): a Bernoulli likelihood applied to grey levels x in [0, 1] is not a
density on [0, 1] (it lacks the normalizer C(lambda)); the continuous Bernoulli adds it,

    log p(x | z) = sum_d [x_d l_d - softplus(l_d) + log C(l_d)],   l = decoder(z)

(``pyro_air.core.distributions.continuous_bernoulli_log_normalizer``, stable near lambda = 1/2).
Same decoder as ``BernoulliVAE``; data must lie in [0, 1].
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.core.distributions import ContinuousBernoulliImage
from pyro_air.core.validation import check_batch, check_grey_levels
from pyro_air.models.bernoulli_vae import BernoulliVAE
from pyro_air.models.registry import MODELS


@MODELS.register("continuous-bernoulli-vae", likelihood="continuous-bernoulli", net="mlp")
class ContinuousBernoulliVAE(BernoulliVAE):
    def validate(self, x: torch.Tensor) -> None:
        check_batch(x, self.x_dim, type(self).__name__)
        check_grey_levels(x, type(self).__name__)

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        return ContinuousBernoulliImage(self.decoder(z))

    def sample(self, num_samples: int) -> torch.Tensor:
        """Means E[x | z] of the continuous Bernoulli for z ~ p(z); use for image grids."""
        p = next(self.parameters())
        z = torch.randn(num_samples, self.z_dim, device=p.device, dtype=p.dtype)
        return self.likelihood(z).mean
