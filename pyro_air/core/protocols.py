"""What a model and a guide are, as typing protocols (docs/design.md, contracts 1 and 6).

Any callable Pyro model and guide that follow the site contract (``pyro_air.core.sites``) work with
every objective through tracing. The protocols below name what pyro-air's base classes
(``pyro_air.models.LatentVariableModel``, ``pyro_air.guides.AmortizedGuide``) add on top, and what
a user's own class implements to get the same treatment:

- ``Model``: ``forward(x, num_data=None)`` is the Pyro model; ``x_dim``, ``z_dim``; ``validate(x)``
  raises a clear error for data the likelihood cannot score.
- ``Guide``: ``forward(x, num_data=None)`` is the Pyro guide; ``x_dim``, ``z_dim``; ``validate(x)``.
  A guide with auxiliary variables also offers ``extended_model(model)``: the model times the
  guide's reverse kernels, which must be idempotent (``HierarchicalGuide``; AVO paper Eq. 3). The
  log-weight primitive applies it, so every objective scores the extended bound.
- Direct scoring (``pyro_air.core.scoring``): a model offers ``log_joint(x, z) -> [K, B]``, a guide
  ``direct_posterior(x)`` (an object with ``rsample(K)`` and ``log_prob(z)``), and each says
  through ``supports_direct_scoring()`` whether these reproduce its ``forward`` exactly.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Posterior(Protocol):
    def rsample(self, num_particles: int) -> torch.Tensor: ...
    def log_prob(self, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Model(Protocol):
    x_dim: int
    z_dim: int

    def __call__(self, x: torch.Tensor, num_data: int | None = None): ...
    def validate(self, x: torch.Tensor) -> None: ...


@runtime_checkable
class Guide(Protocol):
    x_dim: int
    z_dim: int

    def __call__(self, x: torch.Tensor, num_data: int | None = None): ...
    def validate(self, x: torch.Tensor) -> None: ...


@runtime_checkable
class DirectlyScoredModel(Model, Protocol):
    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...
    def supports_direct_scoring(self) -> bool: ...


@runtime_checkable
class DirectlyScoredGuide(Guide, Protocol):
    def direct_posterior(self, x: torch.Tensor) -> Posterior: ...
    def supports_direct_scoring(self) -> bool: ...
