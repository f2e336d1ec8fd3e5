"""Distributions the models share.

``StandardNormal``: the prior p(z) = N(0, I) of every ``LatentVariableModel``, a ``pyro`` ``Normal``
with loc 0 and scale 1 that scores without touching them:

    log N(z; 0, 1) = -z^2 / 2 - log sqrt(2 pi)

``Normal(0, 1).log_prob`` computes -((z - 0)^2) / (2 * 1^2) - log 1 - log sqrt(2 pi): subtracting
an exact 0, dividing by an exact 2 and subtracting log 1 = 0 change no bit, so both give the same
numbers (tests/test_distributions.py); the shortcut skips building broadcast zeros and ones, the
scale's square and logarithm and their autograd nodes (docs/performance.md, "Measurements behind the
code", "Shared distributions"; for the main model/guide pair the fused scorer of
``BernoulliVAE.log_joint`` now skips the object and calls ``standard_normal_log_density``). It is a
``Normal`` in every other respect: sampling, ``expand`` (Pyro's plates), ``mean``, ``variance``,
``entropy`` and the KL divergences registered for ``Normal``.

``BernoulliImage``: ``Bernoulli(logits).to_event(1)``, the likelihood of a binarized image,

    log p(x | z) = sum_d [x_d l_d - softplus(l_d)],

computed per pixel as -(softplus(l_d) - x_d l_d) (one softplus pass and one fused multiply-add
over the [..., D] logits) and summed. torch's ``binary_cross_entropy_with_logits`` - what
``Bernoulli.log_prob`` calls - writes a log-sigmoid, a scratch buffer and three more [..., D]
temporaries: faster on an evaluation chunk, about even in a training step (docs/performance.md,
"Measurements behind the code", "Shared distributions"). It is the same function to float32 rounding
(per pixel: softplus(l) - l for x = 1 cancels to an absolute error of one ulp of l, ~5e-7 for |l| ~
5; whole images differ from ``Bernoulli`` by < 1e-5 relative, tests/test_distributions.py), and it
is also the right cross-entropy for grey x in [0, 1].
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import Distribution
from torch.distributions.utils import broadcast_all
from torch.nn import functional as F

LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


# -- the tensor formulas (shared with the specialized formulas of BernoulliVAE.log_joint) ---------------

def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, 1) per coordinate (what ``StandardNormal.log_prob`` computes)."""
    return -(z ** 2) / 2 - LOG_SQRT_2PI


def normal_log_density(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, scale) per coordinate, term for term as ``torch.distributions.Normal.log_prob``
    computes it (so that a caller gets its bits; tests/test_direct.py checks)."""
    var = scale ** 2
    log_scale = scale.log()
    return -((z - loc) ** 2) / (2 * var) - log_scale - LOG_SQRT_2PI


def bernoulli_image_log_density(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d [x_d l_d - softplus(l_d)] over the last dimension (``BernoulliImage.log_prob``)."""
    return -F.softplus(logits).addcmul_(x, logits, value=-1).sum(-1)


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
        log_density = standard_normal_log_density(value)
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
        return bernoulli_image_log_density(logits, value)


# -- the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) ---------------------------------------
CB_TAYLOR_BELOW = 1e-2  # |logit| below which log C uses its Taylor series (lambda within 0.0025 of 1/2)


def continuous_bernoulli_log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits), elementwise.

    Loaiza-Ganem & Cunningham (2019), Eq. 7: C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) for
    lambda != 1/2 and C(1/2) = 2. In the logit eta, 1 - 2 lambda = -tanh(eta / 2) and
    artanh(1 - 2 lambda) = -eta / 2, so C = eta / tanh(eta / 2), an even function of eta:

        log C = log|eta| - log tanh(|eta| / 2),   log tanh(v) = log1p(-e^{-2v}) - log1p(e^{-2v}),

    and near lambda = 1/2, where both terms cancel (0 / 0 at eta = 0), with u = eta / 2,

        log C = log 2 + u^2 / 3 - 7 u^4 / 90 + O(u^6)

    (error < 1e-13 for |eta| < CB_TAYLOR_BELOW). Gradients are finite everywhere, also at eta = 0:
    the branch not taken is evaluated at a safe point.
    """
    a = logits.abs()
    small = a < CB_TAYLOR_BELOW
    safe = torch.where(small, torch.ones_like(a), a)
    exact = safe.log() - (torch.log1p(-torch.exp(-safe)) - torch.log1p(torch.exp(-safe)))
    u2 = (torch.where(small, a, torch.zeros_like(a)) / 2) ** 2
    taylor = math.log(2.0) + u2 / 3 - 7 * u2 ** 2 / 90
    return torch.where(small, taylor, exact)


def continuous_bernoulli_image_log_density(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d [x_d l_d - softplus(l_d) + log C(l_d)] over the last dimension, x in [0, 1]."""
    return (x * logits - F.softplus(logits) + continuous_bernoulli_log_normalizer(logits)).sum(-1)


class ContinuousBernoulliImage(dist.Independent):
    """Independent continuous-Bernoulli pixels with logits ``logits`` [..., D]; event shape [D].

    The likelihood for grey levels x in [0, 1] (a Bernoulli likelihood is not normalized on [0, 1]:
    Loaiza-Ganem & Cunningham 2019). Scores with ``continuous_bernoulli_image_log_density``;
    sampling and ``mean`` are torch's ``ContinuousBernoulli``.
    """

    def __init__(self, logits: torch.Tensor):
        super().__init__(dist.ContinuousBernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ContinuousBernoulliImage, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits = self.base_dist.logits
        if value.shape != logits.shape:
            logits, value = broadcast_all(logits, value)
        return continuous_bernoulli_image_log_density(logits, value)
