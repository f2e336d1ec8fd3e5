"""The chi upper bound CUBO_n (Dieng et al. 2017, CHIVI; review of Ganguly et al., section 6.1):

    CUBO_n(x) = (1/n) log E_q[ w^n ] >= log p(x)   for n >= 1,    w = p(x, z) / q(z | x)

(Eq. 27 and the line below it), estimated with K reparameterized particles, in log space, as

    CUBO^_n(x) = (1/n) [ logsumexp_k(n log w_k) - log K ]

which is the VR estimate (``renyi.py``) at alpha = 1 - n. Minimizing CUBO_n over the guide
minimizes the chi^n divergence D_chi^n(p(z|x) || q(z|x)) (Eq. 27), because log p(x) does not
depend on the guide.

Training loss (guide only). CHIVI minimizes exp(n CUBO_n) = E_q[w^n], whose Monte Carlo gradient
(1/K) sum_k n w_k^n d log w_k is unbiased but overflows for realistic log w. Dieng et al. rescale
w by a per-datapoint constant; we rescale each datapoint by its own detached estimate
(1/K) sum_j w_j^n, i.e. we differentiate

    sum_k sg(softmax(n log w)_k) log w_k   =   gradient of CUBO^_n,

computed stably with a softmax. Why this constant: it gives every datapoint the weight it has in
d CUBO_n = d E[w^n] / (n E[w^n]) (a max-rescaling would weight the datapoints of a batch by
exp(n (CUBO^_b - max_k log w_kb)), which varies by orders of magnitude); the price is an O(1/K)
bias, as for IWAE. The loss value is (N / B) sum_b CUBO^_n(x_b): the bound itself, scaled outside
the logarithm.

The model is NOT trained by CUBO: minimizing an upper bound over the model parameters would push
log p(x) down. The surrogate uses log p(x, z) - log p(x, z') + sg(log p(x, z')) with z' = sg(z)
(the primitive's fixed-latent densities), so the model's parameters receive exactly zero gradient
while the path through z still reaches the guide. Train the model with a lower bound (ELBO, IWAE)
and the guide with CUBO, or use CUBO for evaluation (``pyro_air.evaluate.upper_bound``).

Note: CUBO^_n is a log of an average, so its expectation lies *below* CUBO_n (Jensen); it is an
upper bound of log p(x) only as K grows, and needs E_q[w^(2n)] < infinity to be reliable.
"""
from __future__ import annotations

import torch

from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.log_weights import LogWeights, log_importance_weights
from pyro_air.infer.renyi import renyi_bound


def cubo_bound(log_w: torch.Tensor, n: float = 2.0) -> torch.Tensor:
    """CUBO^_n = (1/n) log (1/K) sum_k w_k^n for every column of a [K, B] tensor (log space)."""
    return renyi_bound(log_w, 1.0 - n)


class CUBO(LogWeightObjective):
    """CHIVI's training loss for the guide (loss = +(N/B) sum_b CUBO^_n(x_b)); the model gets no gradient.

    ``per_datapoint_bound`` returns -CUBO^_n (the quantity the base class maximizes), so
    ``loss = -(N/B) sum_b per_datapoint_bound = (N/B) sum_b CUBO^_n``.
    """

    def __init__(self, n: float = 2.0, num_particles: int = 8):
        super().__init__(num_particles=num_particles)
        try:
            n = float(n)
        except (TypeError, ValueError):
            raise ValueError(f"n must be a number > 1, got {n!r}") from None
        if not n > 1.0 or n == float("inf"):
            raise ValueError(
                f"CUBO_n is an upper bound of log p(x) only for n >= 1 and n = 1 is the degenerate "
                f"KL(p || q) limit; pass a finite n > 1 (n = 2 is CHIVI's choice), got n={n!r}"
            )
        self.n = n

    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return log_importance_weights(model, guide, *args, num_particles=self.num_particles,
                                      fixed_latent_densities=True, **kwargs)

    def upper_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return cubo_bound(log_w, self.n)

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return -cubo_bound(log_w, self.n)

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        guide_only_log_w = weights.log_w - weights.log_p_fixed + weights.log_p_fixed.detach()
        return -cubo_bound(guide_only_log_w, self.n)
