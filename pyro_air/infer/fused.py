"""The fused scorer: the direct path's log weights for the zoo's main pair, without distribution
objects.

For a model that keeps ``LatentVariableModel.prior`` (p(z) = N(0, I)) and
``BernoulliVAE.likelihood`` (p(x | z) = Bernoulli(logits = decoder(z))), and a guide that keeps
``GaussianEncoder.posterior`` (q(z | x) = N(loc(x), diag scale(x)^2), ``loc_scale``) and sees the
clean x (the plain, large and weight-normalized encoders), the direct path computes (AIR paper
Eq. 5 and 20; IWAE)

    z_kb  = loc_b + eps_kb * scale_b,                 eps ~ N(0, I), one [K, B, z] draw
    log w = log N(z_kb; 0, I) + log Bern(x_b; decoder(z_kb)) - log N(z_kb; loc_b, scale_b)

through five distribution objects (two Independent wrappers, their expansions, Pyro's metaclass
call). Here the same tensor formulas (``pyro_air.distributions``; the Normal one term for term as
torch's) run on the same tensors in the same order - the decoder first, then the prior, the
likelihood and q, which fixes the order in which backward accumulates the gradient of z - so
the log weights and every gradient are identical bit for bit to the distribution-based direct
path and to the traced one (tests/test_fast_path.py), for less Python per training step (~3% of a
784-500-500-50 ELBO step on 2 threads; benchmarks/RESULTS.md reports both paths).

``generic_path()`` turns the fusion off (benchmarks and tests use it to compare the two).
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.distributions.utils import _standard_normal

from pyro_air.distributions import (
    bernoulli_image_log_density,
    normal_log_density,
    standard_normal_log_density,
)
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.bernoulli_vae import BernoulliVAE

_ENABLED = True


@contextlib.contextmanager
def generic_path():
    """Within this block the direct path scores through the distribution objects."""
    global _ENABLED
    before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = before


@functools.cache
def _fusable_types(model_type, guide_type) -> bool:
    return (model_type.prior is LatentVariableModel.prior and model_type.likelihood is BernoulliVAE.likelihood
            and guide_type.posterior is GaussianEncoder.posterior
            and guide_type.encoder_input is AmortizedGuide.encoder_input)


def can_fuse(model, guide) -> bool:
    return _ENABLED and _fusable_types(type(model), type(guide))


def fused_q(guide, x: torch.Tensor):
    """(loc, scale) of q(z | x): what ``GaussianEncoder.posterior`` wraps in a Normal."""
    return guide.loc_scale(x)


def fused_log_weights(model, q, x: torch.Tensor, num_particles: int) -> torch.Tensor:
    """log w [K, B] given q = (loc, scale) [B, z] (module docstring)."""
    loc, scale = q
    shape = torch.Size([num_particles, *loc.shape])
    loc, scale = loc.expand(shape), scale.expand(shape)
    z = loc + _standard_normal(shape, dtype=loc.dtype, device=loc.device) * scale
    logits = model.decoder(z)
    log_prior = standard_normal_log_density(z).sum(-1)
    log_likelihood = bernoulli_image_log_density(logits, x.expand_as(logits))
    return log_prior + log_likelihood - normal_log_density(z, loc, scale).sum(-1)
