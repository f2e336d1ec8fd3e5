"""A VAE for binary images: p(z) = N(0, I), p(x | z) = Bernoulli(sigmoid(MLP(z))).

AIR paper (Shu et al. 2018), section 5 and Appendix E: MLP decoder z-d-d-x.

Direct scoring: ``log_joint`` computes (AIR paper Eq. 5 and 20)

    log p(x_b, z_kb) = sum_j log N(z_kbj; 0, 1) + sum_d [x_bd l_kbd - softplus(l_kbd)],  l = decoder(z)

with the tensor formulas of ``pyro_air.core.distributions`` - the decoder first, then the prior, then the
likelihood, the order in which ``forward``'s distribution objects run and are scored - so its
numbers and gradients are those of the generic ``LatentVariableModel.log_joint`` bit for bit, for
less Python per step (two Independent wrappers and their expansions are skipped; the benchmark
reports both paths). It applies while ``prior`` and ``likelihood`` are the ones written here.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.core.distributions import (
    BernoulliImage,
    bernoulli_image_log_density,
    standard_normal_log_density,
)
from pyro_air.backend.nets import mlp
from pyro_air.core.scoring import keeps, specialized_scoring_enabled
from pyro_air.core.validation import check_binary, check_hidden
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS


@MODELS.register("bernoulli-vae", likelihood="bernoulli", net="mlp")
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

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x_b, z_kb) [K, B] by the specialized formula of the module docstring."""
        if not (specialized_scoring_enabled() and keeps(type(self), BernoulliVAE, "prior", "likelihood")):
            return super().log_joint(x, z)
        logits = self.decoder(z)
        log_prior = standard_normal_log_density(z).sum(-1)
        return log_prior + bernoulli_image_log_density(logits, x.expand_as(logits))

    def sample(self, num_samples: int) -> torch.Tensor:
        """Pixel means sigmoid(decoder(z)) for z ~ p(z); use for image grids."""
        p = next(self.parameters())
        z = torch.randn(num_samples, self.z_dim, device=p.device, dtype=p.dtype)
        return torch.sigmoid(self.decoder(z))
