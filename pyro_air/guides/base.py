"""The guide contract (docs/design.md, contract 1) and its default direct scoring.

A guide is a ``PyroModule`` whose ``forward(x, num_data=None)`` samples the latent site ``"z"``
(event shape [z_dim]) inside ``pyro.plate("data", num_data or B, subsample=x)``, the same plate as
the model's. An *amortized* guide maps each x to a distribution q(z | x) through ``posterior``;
wrappers such as the denoising guide change only what the encoder sees (``encoder_input``).

Networks inside are plain ``torch.nn`` modules (not converted with ``to_pyro_module_``): when the
guide runs under Pyro, ``PyroModule`` attribute access issues ``pyro.module`` for each of them, so
``pyro.infer.SVI`` sees every parameter; outside Pyro (the direct path of ``pyro_air.infer.direct``)
they run as plain torch, without a ``pyro.param`` statement per weight read.

Direct scoring (``pyro_air.core.scoring``): ``direct_posterior(x)`` is q(z | x) for the batch as
``forward`` would sample it (``posterior(encoder_input(x))``), as an object that draws K particles
and scores them; subclasses may return a specialized one (``GaussianEncoder``).
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_air.core.plates import data_plate
from pyro_air.core.scoring import DistributionPosterior, consistent_override
from pyro_air.core.sites import LATENT_SITE, PROJECT_STRUCTURE
from pyro_air.core.validation import (
    check_batch,
    check_positive_int,
    input_checks_enabled,
)


class AmortizedGuide(PyroModule):
    """q(z | x) = posterior(encoder_input(x)), one independent draw per datapoint."""

    x_dim: int
    z_dim: int

    #: one plate, "data", at dim -1 (docs/design.md, contract 1): objectives need not trace it to know
    trace_structure = PROJECT_STRUCTURE

    def __init__(self, x_dim: int, z_dim: int):
        super().__init__(name="guide")  # parameter-store names "guide.*"
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.z_dim = check_positive_int(z_dim, "z_dim")
        self.validate_inputs = True

    def validate(self, x: torch.Tensor) -> None:
        check_batch(x, self.x_dim, type(self).__name__)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q(z | x) with batch shape [B] and event shape [z_dim]."""
        raise NotImplementedError

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees for the batch x (the clean x, unless a wrapper changes it)."""
        return x

    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        if self.validate_inputs and input_checks_enabled():
            self.validate(x)
        q = self.posterior(self.encoder_input(x))
        with data_plate(x, num_data):
            return pyro.sample(LATENT_SITE, q)

    # -- direct scoring (pyro_air.core.scoring) ---------------------------------------------------
    def direct_posterior(self, x: torch.Tensor):
        """q(z | x) for the batch, as ``forward`` samples it, with ``rsample(K)`` and ``log_prob(z)``."""
        return DistributionPosterior(self.posterior(self.encoder_input(x)))

    def supports_direct_scoring(self) -> bool:
        """Whether ``direct_posterior`` reproduces this class's ``forward`` (defined at or below it)."""
        return consistent_override(type(self), "forward", "direct_posterior")
