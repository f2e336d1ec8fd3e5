"""Linear-Gaussian model (probabilistic PCA): z ~ N(0, I), x | z ~ N(W z + b, s^2 I).

Everything is exact here, which makes it the test bench for every estimator and every gap:
    p(x)        = N(x; b, W W^T + s^2 I)
    p(z | x)    = N(z; M^{-1} W^T (x - b) / s^2, M^{-1}),   M = I + W^T W / s^2
(Tipping & Bishop 1999; Bishop, PRML section 12.2).
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.core.validation import check_positive
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS


@MODELS.register("linear-gaussian")
class LinearGaussianModel(LatentVariableModel):
    def __init__(self, x_dim: int = 5, z_dim: int = 2, noise_scale: float = 0.5,
                 weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, seed: int = 0):
        super().__init__(x_dim, z_dim)
        check_positive(noise_scale, "noise_scale")
        gen = torch.Generator().manual_seed(seed)
        if weight is None:
            weight = torch.randn(x_dim, z_dim, generator=gen)
        if bias is None:
            bias = torch.randn(x_dim, generator=gen) * 0.5
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32).clone())
        self.bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32).clone())
        self.log_noise_scale = nn.Parameter(torch.tensor(float(noise_scale)).log())

    @property
    def noise_scale(self) -> torch.Tensor:
        return self.log_noise_scale.exp()

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        loc = z @ self.weight.T + self.bias
        return dist.Normal(loc, self.noise_scale).to_event(1)

    def marginal(self) -> dist.MultivariateNormal:
        """p(x) = N(b, W W^T + s^2 I)."""
        cov = self.weight @ self.weight.T + self.noise_scale ** 2 * torch.eye(self.x_dim)
        return dist.MultivariateNormal(self.bias, covariance_matrix=cov)

    def exact_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per datapoint, Tensor[N]."""
        return self.marginal().log_prob(x)

    def exact_posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """p(z | x) = N(M^{-1} W^T (x - b) / s^2, M^{-1}), batched over the rows of x."""
        s2 = self.noise_scale ** 2
        precision = torch.eye(self.z_dim) + self.weight.T @ self.weight / s2
        cov = torch.linalg.inv(precision)
        loc = ((x - self.bias) @ self.weight / s2) @ cov.T
        return dist.MultivariateNormal(loc, covariance_matrix=cov.expand(len(x), -1, -1))
