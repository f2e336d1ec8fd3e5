"""Annealed Variational Objectives (AVO; Huang, Tan, Lacoste, Courville 2018), for a hierarchical
guide z_0 -> z_1 -> ... -> z_T = z with reverse kernels r_t (its extended model, Eq. 3).

Transition t (t = 1..T) maximizes its own term                                             (Eq. 4)

    L_t = E[ log f~_t(z_t) + log r_t(z_{t-1} | z_t) - log q_t(z_t | z_{t-1}) ],
    f~_t(z) = p(x, z)^{alpha_t} p(z)^{1 - alpha_t} = p(z) p(x | z)^{alpha_t},   alpha_t = t / T

with z_{t-1} detached (footnote 5): z_{t-1} enters q_t and r_t as a constant, so the gradient of
L_t reaches the parameters of q_t and r_t (and the shared encoder features and the model) but not
those of earlier transitions; the intractable -log q_{t-1}(z_{t-1}) of Eq. 4 is then a constant
and is left out. For a non-amortized energy model (``pyro_air.models.energies``) p(z) is the
initial distribution f_0 = q_0, as in the paper. The AVO surrogate maximized in an AVO step is
sum_t L_t; q_0 receives no gradient from it (its marginal is held fixed).

Loss-calibrated AVO (section 4.3): each call draws u ~ U(0, 1); with probability ``a`` the step
maximizes sum_t L_t, otherwise the HVI ELBO (Eq. 3) - as the paper does in its amortized
experiments. In AVO steps the model p(x | z) learns from sum_t alpha_t log p(x | z_t) (the final
term is the ELBO's log p(x | z_T)); in ELBO steps everything learns from the ELBO. ``loss()``
reports the negative HVI ELBO, the bound being optimized.
"""
from __future__ import annotations

import random

import pyro
import torch
from pyro import poutine

from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive_int, check_unit_interval
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.log_weights import extend_model, sample_sites, site_log_density
from pyro_air.infer.registry import OBJECTIVES
from pyro_air.infer.schedules import LinearSchedule, Schedule


@OBJECTIVES.register("avo")
class AVO_ELBO(LogWeightObjective):
    needs_only_log_weights = True  # for ``loss`` (the bound on log w); the training loss is its own

    def __init__(self, num_transitions: int, a: float = 1.0, schedule: Schedule | None = None,
                 num_particles: int = 1, seed: int = 0):
        super().__init__(num_particles)
        self.num_transitions = check_positive_int(num_transitions, "num_transitions")
        self.a = check_unit_interval(a, "a (the probability of an AVO step)")
        self.schedule = schedule if schedule is not None else LinearSchedule(0.0, 1.0, 1.0)
        alphas = [float(self.schedule(t / self.num_transitions)) for t in range(self.num_transitions + 1)]
        if abs(alphas[-1] - 1.0) > 1e-12 or any(not 0.0 <= v <= 1.0 for v in alphas):
            raise ValueError(f"the annealing schedule must map [0, 1] into [0, 1] with alpha_T = 1; got {alphas}")
        self.alphas = alphas
        self._rng = random.Random(seed)  # its own stream: choosing a step never shifts torch's samples

    def state_dict(self) -> dict:
        """The state of the step-choice stream, so a resumed run makes the same choices."""
        version, internal, gauss = self._rng.getstate()
        return {"rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return log_w.mean(0)  # the HVI ELBO (Eq. 3)

    def _check_guide(self, guide) -> None:
        if not hasattr(guide, "detached_steps") or not hasattr(guide, "site_names"):
            raise ValueError(f"AVO needs a hierarchical guide (sites z_0 .. z_T with reverse kernels), got "
                             f"{type(guide).__name__}; use pyro_air.guides.HierarchicalGuide")
        if guide.num_transitions != self.num_transitions:
            raise ValueError(f"AVO_ELBO(num_transitions={self.num_transitions}) does not match the guide's "
                             f"T = {guide.num_transitions}; build both with the same T")

    def step_terms(self, model, guide, *args, **kwargs):
        """[L_1, ..., L_T] as Tensor[B] each (particle means), and the data scale N / B."""
        self._check_guide(guide)
        with guide.detached_steps():
            weights = self.importance_weights(model, guide, args, kwargs)
        names = guide.site_names()
        model = extend_model(model, guide)
        K, scale, layout = weights.num_particles, weights.scale, weights.layout
        log_density = lambda site, value: site_log_density(dict(site, value=value), layout, weights.log_w)

        terms = []
        for t in range(1, self.num_transitions + 1):
            z_t = weights.guide_trace.nodes[names[t]]["value"]
            if t == self.num_transitions:
                trace = weights.model_trace
            else:
                trace = _model_trace_at(model, z_t, args, kwargs, K, layout)
            log_prior, log_lik = _prior_and_likelihood(trace, set(names[:-1]), log_density)
            r_site = weights.model_trace.nodes[names[t - 1]]
            q_site = weights.guide_trace.nodes[names[t]]
            term = (log_prior + self.alphas[t] * log_lik
                    + log_density(r_site, r_site["value"].detach())
                    - log_density(q_site, q_site["value"]))
            terms.append(term.mean(0))
        return terms, scale

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        if self.a > 0 and self._rng.random() < self.a:
            terms, scale = self.step_terms(model, guide, *args, **kwargs)
            return -scale * torch.stack(terms).sum()
        return super().differentiable_loss(model, guide, *args, **kwargs)


def _model_trace_at(model, z, args, kwargs, num_particles, layout):
    """The model's trace with its latent "z" set to ``z`` (kept unobserved, so scales still apply),
    under the particle plate of ``layout``."""
    fixed = poutine.Trace()
    fixed.add_node(LATENT_SITE, name=LATENT_SITE, type="sample", is_observed=False, value=z, infer={})
    extra = {"auxiliaries": False} if getattr(model, "auxiliary_guide", None) is not None else {}
    if layout.particle_plate is None:   # one plain run (a single particle)
        return poutine.trace(poutine.replay(model, trace=fixed)).get_trace(*args, **kwargs, **extra)
    with pyro.plate(layout.particle_plate, num_particles, dim=layout.particle_dim):
        return poutine.trace(poutine.replay(model, trace=fixed)).get_trace(*args, **kwargs, **extra)


def _prior_and_likelihood(trace, auxiliary_names, log_density):
    """(log p(z), log p(x | z)) as [K, B] tensors from a model trace; auxiliary sites are skipped."""
    log_prior, log_lik = 0.0, 0.0
    for site in sample_sites(trace):
        if site["name"] in auxiliary_names:
            continue
        value = log_density(site, site["value"])
        if site["name"] == LATENT_SITE:
            log_prior = log_prior + value
        else:
            log_lik = log_lik + value
    return log_prior, log_lik
