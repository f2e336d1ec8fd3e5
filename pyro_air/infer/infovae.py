"""The InfoVAE objective (Zhao, Song & Ermon, "InfoVAE: Balancing Learning and Inference in
Variational Autoencoders", Eq. 6), to be maximized:

    L = E_pD E_q(z|x)[log p(x | z)] - (1 - alpha) E_pD KL(q(z|x) || p(z)) - (alpha + lam - 1) D(q(z) || p(z))

with q(z) = E_pD q(z | x) the aggregate posterior. Special cases (paper, "Relation to VAE and
beta-VAE" and "Relation to AAE"): alpha = 0, lam = 1 is the ELBO; alpha = 1 - lam with
``divergence="kl"`` is the beta-VAE with beta = lam (the D term vanishes); alpha = 1, lam = 1 is
the adversarial auto-encoder setting, with MMD in place of the Jensen-Shannon divergence.

Estimators, per datapoint b and particle k, from the traces of the shared log-weight primitive:

- log p(x_b | z_kb) from the observed model sites, and the single-sample KL estimate
  log p(z_kb) - log q(z_kb | x_b) from the latent sites (model latents minus guide sites, so a
  hierarchical guide's auxiliary variables count as its extended model scores them). Since
  log w = log p(x|z) + [log p(z) - log q(z|x)], the per-datapoint term is computed as
      log w_kb - alpha * [log p(z_kb) - log q(z_kb | x_b)],
  which is the ELBO's log w bit for bit when alpha = 0.
- D(q(z) || p(z)): ``"mmd"`` is the MMD between the minibatch's aggregate-posterior samples
  {z_kb}_b and B fresh draws from the model's prior (for each particle k, then averaged over k:
  across the data plate, not across particles); ``"kl"`` is the minibatch estimate
  mean_b [log q^(z_kb) - log p(z_kb)], log q^(z) = log (1/B) sum_b' q(z | x_b'), which needs a
  guide whose site "z" is q(z | x) itself (no auxiliary variables).

Scaling with minibatches (``num_data=N``, batch of B): Eq. 6 is an expectation over the data,
and the project's objectives are the sum over the N datapoints, so every term is multiplied by N.
The per-datapoint terms get the plate's N / B like every objective; D is a property of q(z) as
a whole that appears once per datapoint, so the minibatch estimate of D is multiplied by N:

    loss = -(N / B) sum_b mean_k [log w_kb - alpha (log p(z_kb) - log q(z_kb | x_b))] + N (alpha + lam - 1) D^
"""
from __future__ import annotations

import math

import torch

from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.log_weights import LogWeights, sample_sites
from pyro_air.infer.mmd import check_kernel, mmd
from pyro_air.infer.registry import OBJECTIVES

DIVERGENCES = ("mmd", "kl")


def observed_log_likelihood(weights: LogWeights) -> torch.Tensor:
    """log p(x_b | z_kb): the observed model sites' log densities, [K, B]."""
    _check_vectorized(weights)
    k, b = weights.log_w.shape
    total = weights.log_w.new_zeros(k, b)
    for site in sample_sites(weights.model_trace):
        if site["is_observed"]:
            total = total + weights.site_terms(site)
    return total


def latent_log_ratio(weights: LogWeights) -> torch.Tensor:
    """log p(z_kb) - log q(z_kb | x_b): latent model sites minus guide sites, [K, B].

    Its mean over particles is the Monte Carlo estimate of -KL(q(z | x_b) || p(z)).
    """
    _check_vectorized(weights)
    k, b = weights.log_w.shape
    total = weights.log_w.new_zeros(k, b)
    for site in sample_sites(weights.model_trace):
        if not site["is_observed"]:
            total = total + weights.site_terms(site)
    for site in sample_sites(weights.guide_trace):
        total = total - weights.site_terms(site)
    return total


def _check_vectorized(weights: LogWeights) -> None:
    if not weights.vectorized:
        names = [s["name"] for s in sample_sites(weights.guide_trace)]
        raise ValueError(f"this objective reads each site's terms from one vectorized trace, but the guide "
                         f"(sites {', '.join(map(repr, names))}) cannot broadcast over particles; use num_particles=1")


def code_site(weights: LogWeights) -> str:
    """The name of the code z whose aggregate posterior D compares with the prior: the guide's local
    latent site "z" where there is one (the project's guides, hierarchical ones included), else the
    guide's only local latent site, whatever its name; it must be continuous."""
    local = [s for s in sample_sites(weights.guide_trace) if weights.layout.is_local(s)]
    names = [s["name"] for s in local]
    if LATENT_SITE in names:
        name = LATENT_SITE
    elif len(local) == 1:
        name = names[0]
    else:
        raise ValueError(f"InfoVAE's divergence needs one local code site (or one named {LATENT_SITE!r}); the guide "
                         f"samples {', '.join(map(repr, names)) or 'none'} in the data plate: use the ELBO or "
                         "free bits with this guide")
    site = weights.guide_trace.nodes[name]
    if not site["fn"].has_rsample or site["fn"].support.is_discrete:
        raise ValueError(f"InfoVAE's divergence needs a continuous code, but site {name!r} is "
                         f"{type(site['fn']).__name__}; use the ELBO with a discrete local latent")
    if not weights.vectorized:
        raise ValueError(f"InfoVAE needs a guide that broadcasts over a particle dim (site {name!r}); "
                         "use num_particles=1 with this guide")
    return name


def _latent_samples(weights: LogWeights, trace=None, draw: bool = False) -> torch.Tensor:
    """The draws of the code site as [K, B, z_dim] (a scalar code: z_dim = 1): the guide's, or with
    ``draw`` fresh draws from the site's distribution in ``trace`` (the model's prior)."""
    k, b = weights.log_w.shape
    site = (trace or weights.guide_trace).nodes[code_site(weights)]
    if draw:
        fn = site["fn"]
        try:   # the prior expanded to the [K, B] of the guide's draws, as the guide's site is
            z = fn.expand(torch.Size([k, b])).sample()
        except (RuntimeError, ValueError):   # a code with inner plate dims: draw in its own shape
            z = fn.sample()
    else:
        z = site["value"]
    if not site["fn"].event_shape:
        z = z.unsqueeze(-1)
    return z.reshape(-1, b, z.shape[-1]).expand(k, b, z.shape[-1])


def _site_distribution(trace, z: torch.Tensor, name: str = LATENT_SITE):
    """The distribution at site ``name`` of a trace, with batch shape [K, B] like the samples z."""
    fn = trace.nodes[name]["fn"]
    if not fn.event_shape:
        fn = fn.expand(z.shape[:-1] + (1,)).to_event(1)
    return fn.expand(z.shape[:-1])


@OBJECTIVES.register("infovae")
class InfoVAE_ELBO(LogWeightObjective):
    """Eq. 6 of InfoVAE; see the module docstring for the estimators and the minibatch scaling."""

    refuses_global_latents = "the KL and divergence terms are per-datapoint terms of a local code"
    needs_only_log_weights = False  # the code's densities are read from the traces (its own loss methods)

    def __init__(self, alpha: float = 0.0, lam: float = 1000.0, divergence: str = "mmd", kernel: str = "rbf",
                 bandwidth: float | None = None, unbiased: bool = False, num_particles: int = 1,
                 data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        try:
            self.alpha = float(alpha)
        except (TypeError, ValueError):
            raise ValueError(f"alpha must be a number, got {alpha!r}") from None
        if not math.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number, got {alpha!r}")
        self.lam = check_positive(lam, "lam (the InfoVAE scaling coefficient lambda)")
        if divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {divergence!r}; use one of {', '.join(DIVERGENCES)}")
        check_kernel(kernel, bandwidth)
        self.divergence = divergence
        self.kernel = kernel
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        self.unbiased = bool(unbiased)

    @property
    def divergence_weight(self) -> float:
        """alpha + lam - 1, the weight of D(q(z) || p(z)) in Eq. 6."""
        return self.alpha + self.lam - 1.0

    # -- the two parts of Eq. 6 ---------------------------------------------------------------
    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            "InfoVAE_ELBO's per-datapoint terms need the traces, not log w alone; "
            "use per_datapoint_terms(weights) and divergence_estimate(weights)"
        )

    def per_datapoint_terms(self, weights: LogWeights) -> torch.Tensor:
        """mean_k [log p(x_b|z_kb) + (1 - alpha)(log p(z_kb) - log q(z_kb|x_b))], Tensor[B]."""
        terms = weights.log_w
        if self.alpha != 0.0:
            terms = terms - self.alpha * latent_log_ratio(weights)
        return terms.mean(0)

    def divergence_estimate(self, weights: LogWeights) -> torch.Tensor:
        """The minibatch estimate of D(q(z) || p(z)), a scalar averaged over particles."""
        z = _latent_samples(weights)
        if self.divergence == "mmd":
            if self.unbiased and z.shape[-2] < 2:
                raise ValueError(
                    "InfoVAE_ELBO(unbiased=True) needs a minibatch of at least 2 datapoints: the unbiased "
                    "MMD leaves out i = j pairs; train with batch_size >= 2 or use unbiased=False"
                )
            prior_draws = _latent_samples(weights, weights.model_trace, draw=True)
            return mmd(z, prior_draws.detach(), self.kernel, self.bandwidth, self.unbiased).mean()
        return self._aggregate_kl(weights, z)

    def _aggregate_kl(self, weights: LogWeights, z: torch.Tensor) -> torch.Tensor:
        name = code_site(weights)
        extra = [s["name"] for s in sample_sites(weights.guide_trace) if s["name"] != name]
        if extra:
            raise ValueError(
                f"divergence='kl' needs q(z | x) in closed form at site {name!r}, but the guide also samples {extra}; "
                "use divergence='mmd' with this guide"
            )
        q = _site_distribution(weights.guide_trace, z, name)
        p = _site_distribution(weights.model_trace, z, name)
        batch = z.shape[-2]
        # cross[b, k, b'] = log q(z_kb | x_b'): put the sample axis in front of q's [K, B'] batch.
        cross = q.log_prob(z.transpose(0, 1).unsqueeze(-2)).transpose(0, 1)
        log_q_aggregate = torch.logsumexp(cross, dim=-1) - math.log(batch)
        return (log_q_aggregate - p.log_prob(z)).mean()

    # -- the pyro.infer.ELBO interface ----------------------------------------------------------
    def divergence_loss(self, weights: LogWeights) -> torch.Tensor:
        """N (alpha + lam - 1) D^: the batch-level term of the loss (module docstring)."""
        num_data = weights.scale * weights.log_w.shape[1]
        return num_data * self.divergence_weight * self.divergence_estimate(weights)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-(N/B) sum_b terms_b + N (alpha + lam - 1) D^ (module docstring)."""
        weights = self.log_weights(model, guide, *args, **kwargs)
        loss = -weights.scale * self.per_datapoint_terms(weights).sum()
        if self.divergence_weight != 0.0:
            loss = loss + self.divergence_loss(weights)
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            weights = self.log_weights(model, guide, *args, **kwargs)
            loss = -weights.scale * self.per_datapoint_terms(weights).sum().item()
            if self.divergence_weight != 0.0:
                loss = loss + self.divergence_loss(weights).item()
            return loss
