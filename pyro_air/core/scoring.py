"""Direct scoring: the [K, B] log importance weights of a model/guide pair without Pyro's tracing.

The traced primitive (``pyro_air.infer.log_weights``) runs the guide under a particle plate,
replays the model and sums each site's log density. For a pair that follows the contract with one
latent site this reduces to

    z_kb  ~ q(z | x_b)                                       (guide.direct_posterior(x).rsample(K))
    log w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b)      (model.log_joint(x, z) - q.log_prob(z))

and a model or guide offers that reduction by implementing the direct-scoring protocol
(``pyro_air.core.protocols``). The default implementations in the base classes go through the same
distribution objects as their ``forward`` (``DistributionPosterior``); a class may override them
with specialized tensor formulas (``DiagonalNormalPosterior``; ``BernoulliVAE.log_joint``) that
perform the same operations in the same order, so the numbers and gradients are bit-identical
(tests/test_direct.py). ``generic_scoring()`` turns the specialized formulas off, for tests and
benchmarks that compare the two.

Consistency rule (``consistent_override``): a class may use its direct-scoring method only if that
method is defined at or below the class that defines the ``forward`` it must reproduce; a user
class that overrides ``forward`` without overriding the direct method falls back to tracing.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.distributions.utils import _standard_normal

from pyro_air.core.distributions import normal_log_density

_SPECIALIZED = True


@contextlib.contextmanager
def generic_scoring():
    """Within this block models and guides score through their distribution objects only."""
    global _SPECIALIZED
    before, _SPECIALIZED = _SPECIALIZED, False
    try:
        yield
    finally:
        _SPECIALIZED = before


def specialized_scoring_enabled() -> bool:
    """False inside ``generic_scoring()``: specialized formulas must then defer to the generic ones."""
    return _SPECIALIZED


def owner(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO whose ``__dict__`` defines ``name``."""
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


@functools.cache
def consistent_override(cls: type, contract: str, direct: str) -> bool:
    """Whether ``cls.direct`` may stand in for ``cls.contract``: the direct method is defined at or
    below the class that defines the contract method (cached per class: asked on every step)."""
    contract_owner, direct_owner = owner(cls, contract), owner(cls, direct)
    return contract_owner is not None and direct_owner is not None and issubclass(direct_owner, contract_owner)


@functools.cache
def keeps(cls: type, base: type, *names: str) -> bool:
    """Whether ``cls`` inherits each of ``names`` unchanged from ``base`` (a specialized formula
    written for ``base``'s methods is only valid while nobody below overrides them)."""
    return all(getattr(cls, name) is getattr(base, name) for name in names)


class DistributionPosterior:
    """q(z | x) for a batch, drawn and scored through a Pyro distribution with batch shape [B]:
    exactly what the guide's ``pyro.sample`` does under the particle and data plates (the
    distribution expanded to [K, B] once, sampled, and scored at the draw)."""

    def __init__(self, q):
        self.q = q
        self._expanded = None

    def rsample(self, num_particles: int) -> torch.Tensor:
        """K draws per datapoint, [K, B, *event] (reparameterized where the family allows)."""
        q = self.q.expand(torch.Size([num_particles, *self.q.batch_shape]))
        self._expanded = q
        return q.rsample() if q.has_rsample else q.sample()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) of the last draw, [K, B]."""
        return self._expanded.log_prob(z)


class DiagonalNormalPosterior:
    """q(z | x) = N(loc, diag scale^2) as tensors: the bits of ``Normal(loc, scale).to_event(1)``
    expanded to [K, B] (``z = loc + eps * scale``, eps from torch's standard-normal kernel; the log
    density term for term as ``Normal.log_prob``) without building distribution objects."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        self.loc, self.scale = loc, scale
        self._expanded = None

    def rsample(self, num_particles: int) -> torch.Tensor:
        shape = torch.Size([num_particles, *self.loc.shape])
        loc, scale = self.loc.expand(shape), self.scale.expand(shape)
        self._expanded = loc, scale
        return loc + _standard_normal(shape, dtype=loc.dtype, device=loc.device) * scale

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # the expanded tensors: backward sums over K where Pyro's does
            loc, scale = self._expanded
        else:  # the same values element by element, broadcast from [B, z]: scale's log and square
            loc, scale = self.loc, self.scale  # once per datapoint, not once per draw (evaluation)
        return normal_log_density(z, loc, scale).sum(-1)
