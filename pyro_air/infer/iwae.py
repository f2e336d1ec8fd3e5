"""The importance-weighted bound (IWAE; Burda et al. 2016; AIR paper Eq. 20), per datapoint:

    L_K(x) = E[ log (1/K) sum_k w_k ],   w_k = p(x, z_k) / q(z_k | x),  z_k ~ q(z | x)

with three estimators of its gradient; all three give the standard gradient for the model
parameters theta,  sum_k w~_k d/dtheta log p(x, z_k),  w~_k = w_k / sum_j w_j, and differ only in
the guide parameters phi (z_k = z(eps_k, phi) is reparameterized):

- ``"standard"``: d/dphi of the estimate itself, sum_k w~_k (d/dphi log w_k), path and score terms.
- ``"stl"`` (sticking the landing; Roeder, Wu & Duvenaud 2017): the score term
  d/dphi log q(z | x; phi) at fixed z is dropped, sum_k w~_k (d log w_k / d z_k)(dz_k / dphi).
  For K = 1 it is the ELBO's path-derivative estimator, unbiased because E_q[score] = 0. For K > 1
  it is biased: the dropped term sum_k w~_k d/dphi log q(z_k) does not have mean zero because w~_k
  depends on z_k (Tucker et al. 2018, section 5); use "dreg" for an unbiased path-only estimator.
  With q equal to the exact posterior, log w is constant in z and the STL guide gradient is zero.
- ``"dreg"`` (doubly reparameterized; Tucker, Lawson, Gu & Maddison 2018, Eq. 5-7):
  sum_k w~_k^2 (d log w_k / d z_k)(dz_k / dphi): unbiased for the IWAE gradient and, unlike the
  standard estimator, its signal-to-noise ratio does not vanish as K grows.

Both path-only estimators use the primitive's fixed-latent densities (``log_weights.py``): the
phi-dependence of log q at fixed z is cancelled exactly, for any reparameterized guide.
"""
from __future__ import annotations

import math

import torch

from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.log_weights import LogWeights
from pyro_air.infer.registry import OBJECTIVES

ESTIMATORS = ("standard", "dreg", "stl")


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k exp(log_w[k]) for every column of a [K, B] tensor."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def path_only_log_weights(weights: LogWeights) -> torch.Tensor:
    """log w with the guide's score term removed: log w + log q(z'|x) - stop_gradient(log q(z'|x)).

    Equal to ``weights.log_w`` in value; its gradient keeps d/dtheta log p(x, z) and the path
    (d log w / dz)(dz / dphi), and drops d/dphi log q(z | x; phi) at fixed z.
    """
    return weights.log_w + weights.log_q_fixed - weights.log_q_fixed.detach()


def dreg_surrogate(weights: LogWeights) -> torch.Tensor:
    """[B] surrogate whose gradient is DReG's for phi and the standard IWAE one for theta.

        S = sum_k sg(w~_k) log p(x, z'_k)  +  sum_k sg(w~_k^2) [log w^path_k - log p(x, z'_k)]

    log p(x, z'_k) (z' detached) carries only the theta-gradient, so the first sum is the standard
    model gradient and the second contributes only the guide's path term weighted by w~_k^2.
    The value is then reset to the bound: S - sg(S) + sg(L_K).
    """
    log_w = weights.log_w
    normalized = torch.softmax(log_w.detach(), dim=0)
    log_w_path = path_only_log_weights(weights)
    s = (normalized * weights.log_p_fixed).sum(0) + (normalized ** 2 * (log_w_path - weights.log_p_fixed)).sum(0)
    return s - s.detach() + iwae_bound(log_w.detach())


class EstimatorChoiceObjective(LogWeightObjective):
    """A log-weight objective whose guide gradient is one of IWAE's ``ESTIMATORS``.

    "standard" needs only log w; the path-only estimators ("dreg", "stl") also need the
    fixed-latent densities of the shared primitive, so ``log_weights`` asks for them.
    """

    def __init__(self, num_particles: int = 1, estimator: str = "standard", data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"unknown IWAE gradient estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}"
            )
        self.estimator = estimator

    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return self.importance_weights(model, guide, args, kwargs, fixed_latent_densities=self.estimator != "standard")

    @property
    def needs_only_log_weights(self) -> bool:
        return self.estimator == "standard"  # DReG / STL need the fixed-latent densities


@OBJECTIVES.register("iwae")
class IWAE_ELBO(EstimatorChoiceObjective):
    """IWAE-K (AIR Eq. 20) with gradient ``estimator`` in {"standard", "dreg", "stl"}."""

    # the surrogate below reads the fixed-latent densities exactly when the estimator is path-only
    needs_only_log_weights = EstimatorChoiceObjective.needs_only_log_weights

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return iwae_bound(log_w)

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        if self.estimator == "stl":
            return iwae_bound(path_only_log_weights(weights))
        if self.estimator == "dreg":
            return dreg_surrogate(weights)
        return iwae_bound(weights.log_w)
