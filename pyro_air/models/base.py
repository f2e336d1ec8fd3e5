"""The model contract (docs/design.md, contract 1) and its default direct scoring.

A model is a ``PyroModule`` whose ``forward(x, num_data=None)`` is a Pyro model: a latent site
``"z"`` with event shape [z_dim] and an observed site ``"x"``, both inside
``pyro.plate("data", num_data or B, subsample=x)`` at dim -1. With ``num_data=N`` the plate
scales every per-datapoint term by N / B, so objectives estimate the full-data objective.

Networks inside are plain ``torch.nn`` modules (not converted with ``to_pyro_module_``): when the
model runs under Pyro, ``PyroModule`` attribute access issues ``pyro.module`` for each of them, so
``pyro.infer.SVI`` sees every parameter; outside Pyro (the direct path of ``pyro_air.infer.direct``)
they run as plain torch, without a ``pyro.param`` statement per weight read.

Direct scoring (``pyro_air.core.scoring``): ``log_joint(x, z)`` is log p(z) + log p(x | z) through
the same ``prior`` and ``likelihood`` that ``forward`` samples, in the same order, so the traced and
the direct log weights agree bit for bit. Subclasses may override it with a specialized formula.
"""
from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule

from pyro_air.core.distributions import StandardNormal
from pyro_air.core.plates import data_plate
from pyro_air.core.scoring import consistent_override
from pyro_air.core.sites import LATENT_SITE, PROJECT_STRUCTURE, OBSERVED_SITE
from pyro_air.core.validation import (
    check_batch,
    check_positive_int,
    input_checks_enabled,
)


class LatentVariableModel(PyroModule):
    """p(x, z) = p(z) p(x | z) per datapoint; subclasses define ``prior`` and ``likelihood``."""

    x_dim: int
    z_dim: int

    #: one plate, "data", at dim -1 (docs/design.md, contract 1): objectives need not trace it to know
    trace_structure = PROJECT_STRUCTURE

    def __init__(self, x_dim: int, z_dim: int):
        super().__init__(name="model")  # parameter-store names "model.*" never clash with "guide.*"
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.z_dim = check_positive_int(z_dim, "z_dim")
        self.validate_inputs = True

    def validate(self, x: torch.Tensor) -> None:
        check_batch(x, self.x_dim, type(self).__name__)

    def prior(self, batch_size: int, like: torch.Tensor) -> pyro.distributions.Distribution:
        return StandardNormal((batch_size, self.z_dim), like).to_event(1)  # N(0, I)

    def likelihood(self, z: torch.Tensor) -> pyro.distributions.Distribution:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        if self.validate_inputs and input_checks_enabled():
            self.validate(x)
        with data_plate(x, num_data):
            z = pyro.sample(LATENT_SITE, self.prior(x.shape[0], x))
            pyro.sample(OBSERVED_SITE, self.likelihood(z), obs=x)
        return z

    # -- direct scoring (pyro_air.core.scoring) ---------------------------------------------------
    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x_b, z_kb) = log p(z_kb) + log p(x_b | z_kb) for z of shape [K, B, z_dim] -> [K, B].

        What ``forward`` replayed at z gives: Pyro's plates would expand p(z) and p(x | z) to batch
        shape [K, B]; expanding only broadcasts parameters and ``log_prob`` broadcasts the same way,
        so the values are the same unexpanded. Both distributions are built before either is scored,
        in trace order, so backward accumulates gradients in the traced path's order.
        """
        prior = self.prior(x.shape[0], x)
        likelihood = self.likelihood(z)
        return prior.log_prob(z) + likelihood.log_prob(x)

    def supports_direct_scoring(self) -> bool:
        """Whether ``log_joint`` reproduces this class's ``forward`` (it is defined at or below it)."""
        return consistent_override(type(self), "forward", "log_joint")
