"""A VAE for binary images: p(z) = N(0, I), p(x | z) = Bernoulli(sigmoid(MLP(z))).

AIR paper (Shu et al. 2018), section 5 and Appendix E: MLP decoder z-d-d-x.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.distributions import BernoulliImage
from pyro_air.models.base import LatentVariableModel
from pyro_air.nets import mlp
from pyro_air.validation import check_binary, check_hidden


class BernoulliVAE(LatentVariableModel):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), activation: str = "tanh"):
        super().__init__(x_dim, z_dim)
        self.hidden = check_hidden(hidden)
        self.decoder = mlp((self.z_dim, *self.hidden, self.x_dim), act=activation)

    def validate(self, x: torch.Tensor) -> None:
        super().validate(x)
        check_binary(x, type(self).__name__)

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        return BernoulliImage(self.decoder(z))  # = Bernoulli(logits).to_event(1), cheaper to score

    def sample(self, num_samples: int) -> torch.Tensor:
        """Pixel means sigmoid(decoder(z)) for z ~ p(z); use for image grids."""
        p = next(self.parameters())
        z = torch.randn(num_samples, self.z_dim, device=p.device, dtype=p.dtype)
        return torch.sigmoid(self.decoder(z))
