"""Distributions the models share.

``StandardNormal``: the prior p(z) = N(0, I) of every ``LatentVariableModel``, a ``pyro`` ``Normal``
with loc 0 and scale 1 that scores without touching them:

    log N(z; 0, 1) = -z^2 / 2 - log sqrt(2 pi)

``Normal(0, 1).log_prob`` computes -((z - 0)^2) / (2 * 1^2) - log 1 - log sqrt(2 pi): subtracting
an exact 0, dividing by an exact 2 and subtracting log 1 = 0 change no bit, so both give the same
numbers (tests/test_distributions.py); the shortcut skips building broadcast zeros and ones, the
scale's square and logarithm and their autograd nodes, ~0.14 ms of a 784-500-500-50 training step
on this project's 2-core machine (about 1.5% of it; benchmarks/RESULTS.md).
It is a ``Normal`` in every other respect: sampling, ``expand`` (Pyro's plates), ``mean``,
``variance``, ``entropy`` and the KL divergences registered for ``Normal``.

``BernoulliImage``: ``Bernoulli(logits).to_event(1)``, the likelihood of a binarized image,

    log p(x | z) = sum_d [x_d l_d - softplus(l_d)] = -sum_d BCEWithLogits(l_d, x_d),

scored by summing the per-pixel binary cross-entropy and negating the [..., B] sums, where
``Bernoulli.log_prob`` negates all [..., B, D] terms first. Negation is exact, so the numbers are
the same bits; the reordering saves a D-wide negation and its backward node (~45 us of the
training step above).
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import Distribution
from torch.distributions.utils import broadcast_all
from torch.nn import functional as F

LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class StandardNormal(dist.Normal):
    """N(0, 1) with batch shape ``batch_shape``, on the dtype and device of ``like``."""

    def __init__(self, batch_shape, like: torch.Tensor):
        batch_shape = torch.Size(batch_shape)
        zero = like.new_zeros(())
        self.loc = zero.expand(batch_shape)
        self.scale = like.new_ones(()).expand(batch_shape)
        Distribution.__init__(self, batch_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(StandardNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_density = -(value ** 2) / 2 - LOG_SQRT_2PI
        shape = torch.broadcast_shapes(log_density.shape, self.batch_shape)  # as Normal.log_prob broadcasts
        return log_density if shape == log_density.shape else log_density.expand(shape)


class BernoulliImage(dist.Independent):
    """Independent Bernoulli pixels with logits ``logits`` [..., D]; event shape [D]."""

    def __init__(self, logits: torch.Tensor):
        super().__init__(dist.Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BernoulliImage, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits = self.base_dist.logits
        if value.shape != logits.shape:
            logits, value = broadcast_all(logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)
