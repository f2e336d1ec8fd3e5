"""A VAE for real-valued data: p(z) = N(0, I), p(x | z) = N(mu(z), diag sigma(z)^2), MLP mu and sigma.

InfoVAE (Zhao, Song & Ermon), Proposition 1 and Figure 1: on the two-point data set {-1, 1} a
Gaussian decoder with flexible mu(z), sigma(z) lets the ELBO grow without bound by pushing the
posteriors q(z | x) apart and shrinking sigma; the paper uses three hidden layers of 200 units.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.backend.nets import mlp, softplus_scale
from pyro_air.core.validation import check_hidden, check_positive
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS


@MODELS.register("gaussian-mlp-vae", likelihood="gaussian", net="mlp")
class GaussianMLPVAE(LatentVariableModel):
    def __init__(self, x_dim: int = 1, z_dim: int = 1, hidden=(200, 200, 200), activation: str = "tanh",
                 min_scale: float = 1e-4):
        super().__init__(x_dim, z_dim)
        self.hidden = check_hidden(hidden)
        self.min_scale = check_positive(min_scale, "min_scale (the decoder's smallest standard deviation)")
        self.decoder = mlp((self.z_dim, *self.hidden, 2 * self.x_dim), act=activation)

    def loc_scale(self, z: torch.Tensor):
        loc, raw_scale = self.decoder(z).chunk(2, dim=-1)
        return loc, softplus_scale(raw_scale, self.min_scale)

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        loc, scale = self.loc_scale(z)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)

    def sample(self, num_samples: int) -> torch.Tensor:
        """Means E[x | z] = mu(z) for z ~ p(z); use for image grids."""
        p = next(self.parameters())
        z = torch.randn(num_samples, self.z_dim, device=p.device, dtype=p.dtype)
        return self.loc_scale(z)[0]
