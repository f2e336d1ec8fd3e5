"""The plain amortized Gaussian encoder: q(z | x) = N(mu(x), diag sigma(x)^2).

Kingma & Welling 2014; AIR paper (Shu et al. 2018) Eq. 5, encoder x-d-d-z (Appendix E).

Direct scoring: ``direct_posterior`` returns the (loc, scale) tensors as a
``DiagonalNormalPosterior`` (z = loc + eps * scale and the Normal log density as torch computes
them), bit-identical to drawing from and scoring ``posterior``'s distribution objects. It applies
while ``posterior`` is the one written here (the weight-normalized and larger encoders keep it;
the IAF guide does not and takes the generic path).
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.backend.nets import mlp, softplus_scale
from pyro_air.core.scoring import (
    DiagonalNormalPosterior,
    keeps,
    specialized_scoring_enabled,
)
from pyro_air.core.validation import check_hidden
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.registry import GUIDES


@GUIDES.register("gaussian", hidden=True, conv="conv-gaussian")
class GaussianEncoder(AmortizedGuide):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), activation: str = "tanh",
                 linear=nn.Linear):
        super().__init__(x_dim, z_dim)
        self.hidden = check_hidden(hidden)
        if not self.hidden:
            raise ValueError("hidden must name at least one hidden layer, e.g. hidden=(500, 500)")
        self.features = mlp((self.x_dim, *self.hidden), act=activation, final_activation=True, linear=linear)
        self.head = linear(self.hidden[-1], 2 * self.z_dim)

    def loc_scale(self, x: torch.Tensor):
        loc, raw_scale = self.head(self.features(x)).chunk(2, dim=-1)
        return loc, softplus_scale(raw_scale)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        loc, scale = self.loc_scale(x)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)

    def direct_posterior(self, x: torch.Tensor):
        """q(z | x) for the batch as tensors (module docstring), or the generic object."""
        if not (specialized_scoring_enabled() and keeps(type(self), GaussianEncoder, "posterior", "loc_scale")):
            return super().direct_posterior(x)
        return DiagonalNormalPosterior(*self.loc_scale(self.encoder_input(x)))
