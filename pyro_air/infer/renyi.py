"""The variational Rényi (VR) bound (Li & Turner 2016; review of Ganguly et al., Eq. 29), per datapoint:

    L_alpha(x) = 1/(1 - alpha) log E_q[ w^(1 - alpha) ],       w = p(x, z) / q(z | x)

estimated with K reparameterized particles as

    L^_alpha(x) = 1/(1 - alpha) log (1/K) sum_k w_k^(1 - alpha)        (computed in log space).

L_alpha is continuous and non-increasing in alpha; alpha = 0 is IWAE-K exactly (AIR Eq. 20),
alpha -> 1 is the ELBO (use ``ELBO`` for it: alpha = 1 divides by zero), alpha < 0 lies above
log p(x) in expectation as K grows (an upper-bound side), and alpha -> -inf is VR-max,
max_k log w_k. The gradient is that of the estimate (the reparameterization gradient of the VR
paper): sum_k softmax((1 - alpha) log w)_k d log w_k, for model and guide alike.

With ``num_data=N`` the loss is -(N / B) sum_b L^_alpha(x_b): the scale sits outside the
logarithm (Pyro 1.9's ``RenyiELBO`` raises the scale into the exponent instead).
"""
from __future__ import annotations

import math

import torch

from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.registry import OBJECTIVES


def renyi_bound(log_w: torch.Tensor, alpha: float) -> torch.Tensor:
    """1/(1 - alpha) [logsumexp((1 - alpha) log_w) - log K] for every column of a [K, B] tensor."""
    if alpha == -math.inf:
        return log_w.max(dim=0).values
    r = 1.0 - alpha
    return (torch.logsumexp(r * log_w, dim=0) - math.log(log_w.shape[0])) / r


@OBJECTIVES.register("renyi")
class RenyiELBO(LogWeightObjective):
    """VR-alpha bound (Eq. 29) for any real alpha != 1, or alpha = float("-inf") for VR-max."""

    needs_only_log_weights = True

    def __init__(self, alpha: float = 0.0, num_particles: int = 2, data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise ValueError(f"alpha must be a real number or float('-inf'), got {alpha!r}") from None
        if math.isnan(alpha) or alpha == math.inf:
            raise ValueError(f"alpha must be a real number or float('-inf'), got {alpha!r}")
        if alpha == 1.0:
            raise ValueError(
                "alpha = 1 makes the Rényi bound 1/(1 - alpha) log E[w^(1 - alpha)] divide by zero; its "
                "limit is the ELBO: use pyro_air.infer.MonteCarloELBO (infer.build('elbo')) instead"
            )
        self.alpha = alpha
        # alpha < 0 bounds log p(x) from above as K grows: no per-datapoint form over global latents
        self.refuses_global_latents = "alpha < 0 bounds log p(x) from above as K grows" if alpha < 0 else False

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return renyi_bound(log_w, self.alpha)
