"""The importance-weighted bound (IWAE; Burda et al. 2016; AIR paper Eq. 20), per datapoint:

    L_K(x) = E[ log (1/K) sum_k w_k ],   w_k = p(x, z_k) / q(z_k | x),  z_k ~ q(z | x)
"""
from __future__ import annotations

import math

import torch

from pyro_air.infer.base import LogWeightObjective


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k exp(log_w[k]) for every column of a [K, B] tensor."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class IWAE_ELBO(LogWeightObjective):
    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return iwae_bound(log_w)
