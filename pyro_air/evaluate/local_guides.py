"""Per-datapoint Gaussians for any guide: the local optimization of IW-SVI and of the amortization gap
(AIR paper, Appendix C, Eq. 42; Cremer, Li & Duvenaud 2018) on models this project did not write.

For a guide without ``posterior(x)`` (a user's guide: any number of local sites, any supports),
``SiteGaussians`` replaces every continuous local latent site s of the guide by a free Gaussian per
datapoint in the site's unconstrained space,

    q_x(z_s) = T_s# N(loc_s, diag scale_s^2),      T_s = biject_to(support of s),

one (loc, scale) per datapoint and coordinate, mean-field across sites. The guide itself still runs
(its plates, masks, scales and ``pyro.markov`` stay as they are); at each local site its
distribution is swapped for q_x, so the log weights are scored by the same primitive as everywhere
(``pyro_air.infer.log_weights``). Global sites keep the guide's own distribution.

Initialization, and why: the amortized guide's values are read off M = ``init_draws`` of its own
draws per datapoint, mapped to unconstrained space, as their mean and standard deviation. That
needs nothing of the guide but to be run: no access to its network's outputs, no assumption on the
family (normalizing flows, Gamma / Beta / Dirichlet sites); for a Gaussian site it recovers the
guide's own loc and scale up to Monte Carlo error of order scale / sqrt(M). The project's Gaussian
encoders keep their exact initialization from ``posterior(x)`` (``iw_svi.LocalGaussianGuide``),
and with it their numbers bit for bit.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.poutine.messenger import Messenger

from pyro_air.infer.log_weights import extend_model, log_importance_weights
from pyro_air.infer.structure import find_data_plate, model_structure, sample_sites


class _SwapSites(Messenger):
    """At each named site, the guide's distribution is replaced by ``build(name, fn)``."""

    def __init__(self, build, names):
        super().__init__()
        self.build, self.names = build, names

    def _pyro_sample(self, msg):
        if msg["name"] in self.names and not msg["is_observed"]:
            msg["fn"] = self.build(msg["name"], msg["fn"])


class SiteGaussians:
    """A guide: ``guide`` with each of ``sites`` ({name: (loc, scale)}, unconstrained, one row per
    datapoint of a fixed batch) drawn from its per-datapoint Gaussian (module docstring)."""

    def __init__(self, guide, sites: dict):
        self.guide = guide
        self.loc = {name: loc.detach().clone().requires_grad_(True) for name, (loc, _) in sites.items()}
        self.log_scale = {name: scale.detach().clamp_min(1e-8).log().requires_grad_(True)
                          for name, (_, scale) in sites.items()}

    def parameters(self):
        return list(self.loc.values()) + list(self.log_scale.values())

    def distribution(self, name, fn):
        event = len(fn.event_shape)
        base = dist.Normal(self.loc[name], self.log_scale[name].exp(), validate_args=False).to_event(event)
        return dist.TransformedDistribution(base, [biject_to(fn.support)], validate_args=False)

    def __call__(self, *args, **kwargs):
        with _SwapSites(self.distribution, set(self.loc)):
            return self.guide(*args, **kwargs)


def local_site_draws(model, guide, args, kwargs, num_draws: int, data_plate=None) -> dict:
    """{name: [M, *value shape]} unconstrained draws of the guide's local latent sites, from M plain
    (unvectorized) runs of the guide; a discrete local site is refused in one line."""
    runs = []
    for _ in range(num_draws):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        runs.append(guide_trace)
    model_trace = poutine.trace(poutine.replay(extend_model(model, guide), trace=runs[0])).get_trace(*args, **kwargs)
    plate = find_data_plate(model_trace, data_plate)
    out = {}
    for site in sample_sites(runs[0]):
        if plate is not None and not any(f.name == plate for f in site["cond_indep_stack"]):
            continue   # a global site keeps the guide's distribution
        if site["fn"].support.is_discrete:
            raise ValueError(f"guide site {site['name']!r} is discrete ({type(site['fn']).__name__}); per-datapoint "
                             "Gaussians need continuous local latents: use log_likelihood for this model")
        transform = biject_to(site["fn"].support)
        out[site["name"]] = torch.stack([transform.inv(run.nodes[site["name"]]["value"]) for run in runs])
    return out


def fit_site_gaussians(model, guide, args, kwargs, bound_fn, num_steps: int, num_particles: int, lr: float,
                       init_draws: int = 32, data_plate=None) -> SiteGaussians:
    """``num_steps`` Adam steps of ``SiteGaussians`` on ``bound_fn(log w)`` summed over datapoints,
    the model and the guide fixed, started at the guide's moments (module docstring)."""
    with torch.no_grad():
        draws = local_site_draws(model, guide, args, kwargs, init_draws, data_plate)
    if not draws:
        raise ValueError("the guide samples no local latent site (none inside the data plate): there is nothing to "
                         "optimize per datapoint; use log_likelihood")
    sites = {name: (v.mean(0), v.std(0) if len(v) > 1 else torch.ones_like(v[0])) for name, v in draws.items()}
    local = SiteGaussians(guide, sites)
    params = local.parameters()
    optimizer = torch.optim.Adam(params, lr=lr)
    structure = model_structure(extend_model(model, guide), local, args, kwargs, data_plate)
    vectorize = None
    with torch.enable_grad():
        for _ in range(num_steps):
            weights = log_importance_weights(model, local, *args, num_particles=num_particles, structure=structure,
                                             vectorize=vectorize, **kwargs)
            vectorize = weights.layout.particle_plate is not None
            loss = -bound_fn(weights.log_w).sum()
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    return local
