"""MIWAE, PIWAE and CIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018, "Tighter
Variational Bounds are Not Necessarily Better", section 4): variants of the importance-weighted
bound that trade the signal the encoder's gradient gets (it weakens as the bound tightens) against
the tightness the decoder gets. With w_mk = p(x, z_mk) / q(z_mk | x), z_mk ~ q(z | x), per datapoint:

- MIWAE(M, K): the average of M independent IWAE-K bounds on M * K draws,
      L = (1/M) sum_m log (1/K) sum_k w_mk.
  M = 1 is IWAE-K; K = 1 is the ELBO with M particles.
- CIWAE(beta): a convex combination of the ELBO and IWAE-K on the same K draws,
      L = beta (1/K) sum_k log w_k + (1 - beta) log (1/K) sum_k w_k,   beta in [0, 1].
  beta = 1 is the ELBO with K particles; beta = 0 is IWAE-K.
- PIWAE(M, K): the decoder (theta) ascends IWAE-(M K) and the encoder (phi) ascends MIWAE(M, K),
  on the same M * K draws. M = 1 is IWAE-K.

The draws are those of the shared log-weight primitive (docs/design.md, contract 2) with M * K
particles, group m being particles m K, ..., m K + K - 1 ([M * K, B] read as [M, K, B]). MIWAE
regroups them as an IWAE-K over M * B columns and averages the groups, so IWAE's gradient
estimators apply per group (``estimator`` as in ``IWAE_ELBO``: "standard", "dreg", "stl").

PIWAE's two gradients from one surrogate: the fixed-latent density log p(x, z'), z' = sg(z), has
the theta-gradient of log p(x, z) and no phi-gradient. Every estimator gives the theta-gradient
(1/M) sum_m sum_k w~(m)_k d/dtheta log p(x, z_mk) to MIWAE, w~(m) normalized within group m, so

    S = S_MIWAE - (1/M) sum_m sum_k sg(w~(m)_k) log p(x, z'_mk) + sum_j sg(w~_j) log p(x, z'_j)

(w~ normalized over all M K draws) has MIWAE's phi-gradient and IWAE-(M K)'s theta-gradient; its
value is reset to IWAE-(M K). "phi" is whatever the guide's sites depend on: a hierarchical
guide's reverse kernels, scored on the model side, count as theta here.
"""
from __future__ import annotations

import torch

from pyro_air.core.validation import check_positive_int, check_unit_interval
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.iwae import IWAE_ELBO, EstimatorChoiceObjective, iwae_bound
from pyro_air.infer.log_weights import LogWeights
from pyro_air.infer.registry import OBJECTIVES


def grouped(t: torch.Tensor | None, num_groups: int) -> torch.Tensor | None:
    """[M * K, B] -> [K, M * B]: column m * B + b holds group m of datapoint b."""
    if t is None:
        return None
    mk, b = t.shape
    k = mk // num_groups
    return t.reshape(num_groups, k, b).transpose(0, 1).reshape(k, num_groups * b)


def group_mean(t: torch.Tensor, num_groups: int) -> torch.Tensor:
    """[M * B] -> [B]: the mean over the groups."""
    return t.reshape(num_groups, -1).mean(0)


def grouped_weights(weights: LogWeights, num_groups: int) -> LogWeights:
    return LogWeights(grouped(weights.log_w, num_groups), weights.scale, weights.model_trace, weights.guide_trace,
                      grouped(weights.log_p_fixed, num_groups), grouped(weights.log_q_fixed, num_groups))


def miwae_bound(log_w: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(1/M) sum_m log (1/K) sum_k w_mk for every column of a [M * K, B] tensor -> [B]."""
    return group_mean(iwae_bound(grouped(log_w, num_groups)), num_groups)


def ciwae_bound(log_w: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * mean_k log w_k + (1 - beta) * log mean_k w_k per column of [K, B] -> [B]."""
    if beta == 1.0:
        return log_w.mean(0)
    if beta == 0.0:
        return iwae_bound(log_w)
    return beta * log_w.mean(0) + (1.0 - beta) * iwae_bound(log_w)


def check_group_sizes(num_groups, group_size):
    check_positive_int(num_groups, "num_groups (M, the number of IWAE bounds averaged)")
    check_positive_int(group_size, "group_size (K, the particles inside each IWAE bound)")


@OBJECTIVES.register("miwae", num_particles=False)
class MIWAE_ELBO(EstimatorChoiceObjective):
    """MIWAE(M = ``num_groups``, K = ``group_size``) with IWAE's gradient ``estimator`` per group."""

    def __init__(self, num_groups: int = 1, group_size: int = 1, estimator: str = "standard",
                 data_plate: str | None = None):
        check_group_sizes(num_groups, group_size)
        super().__init__(num_particles=num_groups * group_size, estimator=estimator, data_plate=data_plate)
        self.num_groups, self.group_size = num_groups, group_size
        self.inner = IWAE_ELBO(num_particles=group_size, estimator=estimator)

    # each group's surrogate is IWAE's, which reads the fixed-latent densities when path-only
    needs_only_log_weights = EstimatorChoiceObjective.needs_only_log_weights

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return miwae_bound(log_w, self.num_groups)

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        inner = self.inner.surrogate_per_datapoint(grouped_weights(weights, self.num_groups))
        return group_mean(inner, self.num_groups)


@OBJECTIVES.register("ciwae")
class CIWAE_ELBO(LogWeightObjective):
    """CIWAE(beta) on K = ``num_particles`` draws: beta ELBO + (1 - beta) IWAE-K."""

    def __init__(self, beta: float = 0.5, num_particles: int = 1, data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        try:
            self.beta = check_unit_interval(beta, "beta (the ELBO's weight in CIWAE)")
        except (TypeError, ValueError):
            raise ValueError(f"beta (the ELBO's weight in CIWAE) must lie in [0, 1], got {beta!r}") from None

    needs_only_log_weights = True

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return ciwae_bound(log_w, self.beta)


@OBJECTIVES.register("piwae", num_particles=False)
class PIWAE_ELBO(MIWAE_ELBO):
    """PIWAE(M, K): decoder on IWAE-(M K), encoder on MIWAE(M, K) (module docstring)."""

    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return self.importance_weights(model, guide, args, kwargs, fixed_latent_densities=True)

    @property
    def needs_only_log_weights(self) -> bool:
        return self.num_groups == 1 and self.estimator == "standard"  # else the fixed-latent densities

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return iwae_bound(log_w)

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        encoder_part = super().surrogate_per_datapoint(weights)
        if self.num_groups == 1:
            return encoder_part              # the two theta-terms below are the same: IWAE-K exactly
        log_w = weights.log_w.detach()
        group_normalized = grouped(log_w, self.num_groups).softmax(0)
        theta_groups = group_mean((group_normalized * grouped(weights.log_p_fixed, self.num_groups)).sum(0),
                                  self.num_groups)
        theta_all = (log_w.softmax(0) * weights.log_p_fixed).sum(0)
        s = encoder_part - theta_groups + theta_all
        return s - s.detach() + iwae_bound(log_w)

