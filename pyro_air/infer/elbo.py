"""The evidence lower bound, per datapoint, with K reparameterized particles:

    ELBO(x) = E_q[log p(x, z) - log q(z | x)] ~ (1/K) sum_k log w_k

(AIR paper, Eq. 5: the amortized ELBO.)
"""
from __future__ import annotations

import torch

from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.registry import OBJECTIVES


@OBJECTIVES.register("elbo")
class MonteCarloELBO(LogWeightObjective):
    """The ELBO estimated by the mean of K log importance weights (registry name "elbo").

    Named for what it is rather than ``ELBO``, which would shadow ``pyro.infer.ELBO``, the base class
    of every objective here.

    On any model Pyro's ``Trace_ELBO`` accepts it gives Trace_ELBO's loss and gradients: global
    latents are drawn per particle, and guide sites without ``rsample`` (discrete latents) get
    Trace_ELBO's score-function surrogate (``pyro_air.infer.log_weights``, "Score-function terms")."""

    globals_per_particle = True
    score_function_gradients = True
    needs_only_log_weights = True

    def __init__(self, num_particles: int = 1, data_plate: str | None = None, max_plate_nesting: int | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate, max_plate_nesting=max_plate_nesting)

    def global_surrogate(self, weights):
        extra = super().global_surrogate(weights)
        if weights.score_term is not None:
            extra = extra + weights.score_term / weights.num_particles
        return extra

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return log_w.mean(0)
