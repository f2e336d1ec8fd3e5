"""The exact posterior of the linear-Gaussian model as a guide (a test and teaching aid).

q(z | x) = p(z | x) = N(M^{-1} W^T (x - b) / s^2, M^{-1}) with M = I + W^T W / s^2.
With it every importance weight equals p(x), so every bound is tight.

``model`` is any model with ``exact_posterior(x)`` (``pyro_air.models.LinearGaussianModel``); it is
taken by duck typing so that guides do not import models (docs/design.md, layers).
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.guides.base import AmortizedGuide


class ExactPosteriorGuide(AmortizedGuide):
    def __init__(self, model, scale_factor: float = 1.0, loc_shift: float = 0.0):
        super().__init__(model.x_dim, model.z_dim)
        self._model = [model]  # a list, so the model's parameters are not the guide's
        self.scale_factor = float(scale_factor)
        self.loc_shift = float(loc_shift)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        exact = self._model[0].exact_posterior(x)
        if self.scale_factor == 1.0 and self.loc_shift == 0.0:
            return exact
        tril = exact.scale_tril * self.scale_factor
        return dist.MultivariateNormal(exact.loc + self.loc_shift, scale_tril=tril)
