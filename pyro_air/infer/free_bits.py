"""Free bits (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved Variational
Inference with Inverse Autoregressive Flow", the free-bits objective of their appendix), to be
maximized over a minibatch M:

    L_lambda = E_{x in M} E_q(z|x)[log p(x | z)] - sum_j max(lambda, E_{x in M} KL(q(z_j | x) || p(z_j)))

The latent dimensions j are the groups (``per_dimension=True``, the paper's choice with one group
per dimension) or all of z is one group (``per_dimension=False``). A group whose minibatch-average
KL is below lambda costs the constant lambda: its KL term has zero gradient, so the encoder is not
pushed to close it (the remedy against the decoder ignoring z), while above lambda the term is
the ELBO's. With lambda = 0 (not allowed; use ``pyro_air.infer.MonteCarloELBO``) it is the ELBO.

Estimators, from the traces of the shared log-weight primitive (docs/design.md, contract 2):
log p(x_b | z_kb) from the observed sites, averaged over the K particles; the KL per datapoint and
dimension ``kl="analytic"`` in closed form (``torch.distributions.kl_divergence`` of the latent
site's factors: a guide whose site "z" is a factorized q(z | x), e.g. the Gaussian encoders), or
``kl="sample"``: log q(z_kb | x_b) - log p(z_kb), per dimension for factorized sites, else (with
``per_dimension=False``) the latent sites' total, which works for any guide, hierarchical or flow.

Minibatch scaling (as ``InfoVAE_ELBO``): the reconstruction terms get the plate's N / B; the
clamped KL is a property of the minibatch average, counted once per datapoint, so it is multiplied
by N:   loss = -(N / B) sum_b mean_k log p(x_b | z_kb) + N sum_j max(lambda, mean_b KL_bj).
"""
from __future__ import annotations

import torch
from torch.distributions import Independent, kl_divergence

from pyro_air.core.validation import check_positive
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.infovae import latent_log_ratio, observed_log_likelihood
from pyro_air.infer.log_weights import LogWeights, sample_sites
from pyro_air.infer.registry import OBJECTIVES

KL_ESTIMATORS = ("analytic", "sample")


def factors(fn):
    """The per-dimension distribution under ``Independent`` wrappers (batch shape [..., z_dim])."""
    while isinstance(fn, Independent):
        fn = fn.base_dist
    return fn


def latent_site_pair(weights: LogWeights):
    """(guide site "z", model site "z"); error when the guide has other (auxiliary) sites."""
    names = [s["name"] for s in sample_sites(weights.guide_trace)]
    if len(names) != 1 or not weights.vectorized:
        raise ValueError(
            "a per-dimension KL needs a guide with one latent site, a factorized q(z | x) that broadcasts over "
            "particles, "
            f"but the guide samples {[s['name'] for s in sample_sites(weights.guide_trace)]}; "
            "use per_dimension=False, kl='sample' with this guide"
        )
    return weights.guide_trace.nodes[names[0]], weights.model_trace.nodes[names[0]]


def kl_per_dimension(weights: LogWeights, estimator: str = "analytic") -> torch.Tensor:
    """KL(q(z_j | x_b) || p(z_j)) per datapoint and dimension, [B, z_dim] (mean over particles for
    the sample estimator; the closed form does not depend on the draws)."""
    q_site, p_site = latent_site_pair(weights)
    k, b = weights.log_w.shape
    q, p = factors(q_site["fn"]), factors(p_site["fn"])
    if estimator == "analytic":
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            raise ValueError(
                f"no closed-form KL between {type(q).__name__} and {type(p).__name__}; use kl='sample'"
            ) from None
    else:
        z = q_site["value"]
        kl = q.log_prob(z) - p.log_prob(z)
    if kl.shape != q_site["value"].shape:
        raise ValueError(f"the latent site {q_site['name']!r} does not factorize over its last dimension; "
                         "use per_dimension=False, kl='sample'")
    return kl.reshape(-1, b, kl.shape[-1]).expand(k, b, kl.shape[-1]).mean(0)


@OBJECTIVES.register("free-bits")
class FreeBitsELBO(LogWeightObjective):
    """The free-bits objective (module docstring) with threshold ``free_bits`` = lambda (nats per group)."""

    refuses_global_latents = "free bits bound a per-datapoint KL of the local code"
    needs_only_log_weights = False  # the KL groups are read from the traces (its own loss methods)

    def __init__(self, free_bits: float = 0.5, per_dimension: bool = True, kl: str = "analytic",
                 num_particles: int = 1, data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        self.free_bits = check_positive(free_bits, "free_bits (lambda, nats per group; for lambda = 0 use the ELBO)")
        if kl not in KL_ESTIMATORS:
            raise ValueError(f"unknown KL estimator {kl!r}; use one of {', '.join(KL_ESTIMATORS)}")
        if kl == "analytic" and not per_dimension:
            raise ValueError("kl='analytic' is computed per dimension; with per_dimension=False use kl='sample'")
        self.per_dimension = bool(per_dimension)
        self.kl = kl

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        raise TypeError("FreeBitsELBO needs the traces, not log w alone; use reconstruction(weights) and "
                        "group_kl(weights)")

    def reconstruction(self, weights: LogWeights) -> torch.Tensor:
        """mean_k log p(x_b | z_kb), Tensor[B]."""
        return observed_log_likelihood(weights).mean(0)

    def group_kl(self, weights: LogWeights) -> torch.Tensor:
        """The minibatch-average KL of each group: [z_dim] per dimension, [1] for one group."""
        if self.per_dimension:
            return kl_per_dimension(weights, self.kl).mean(0)
        return (-latent_log_ratio(weights)).mean().reshape(1)

    def rate_penalty(self, weights: LogWeights) -> torch.Tensor:
        """sum_j max(lambda, mean_b KL_bj): below lambda a group's term is constant (zero gradient)."""
        kl = self.group_kl(weights)
        return torch.clamp(kl, min=self.free_bits).sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        weights = self.log_weights(model, guide, *args, **kwargs)
        num_data = weights.scale * weights.log_w.shape[1]
        return -weights.scale * self.reconstruction(weights).sum() + num_data * self.rate_penalty(weights)

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()
