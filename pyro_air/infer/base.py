"""Base class of every objective: a ``pyro.infer.ELBO`` built on the log-weight primitive.

A subclass defines ``per_datapoint_bound(log_w) -> Tensor[B]`` (to be maximized); the loss is

    loss = -(N / B) * sum_b bound_b

so ``pyro.infer.SVI`` and ``pyro_air.train`` both minimize an unbiased estimate of the
full-data negative bound (docs/design.md, contract 2).
"""
from __future__ import annotations

import pyro.infer
import torch

from pyro_air.core.validation import check_positive_int
from pyro_air.infer.direct import can_compute_directly, direct_log_weights
from pyro_air.infer.log_weights import LogWeights, log_importance_weights


class LogWeightObjective(pyro.infer.ELBO):
    def __init__(self, num_particles: int = 1):
        check_positive_int(num_particles, "num_particles")
        super().__init__(num_particles=num_particles, max_plate_nesting=1, vectorize_particles=True)

    # -- what a subclass defines -------------------------------------------------------------
    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        """What is differentiated; equals the bound in value. Gradient estimators override it."""
        return self.per_datapoint_bound(weights.log_w)

    # -- the pyro.infer.ELBO interface ----------------------------------------------------------
    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return log_importance_weights(model, guide, *args, num_particles=self.num_particles, **kwargs)

    def _get_trace(self, model, guide, args, kwargs):
        """The particle-vectorized (model_trace, guide_trace) pair, for Pyro's ELBO machinery."""
        weights = self.log_weights(model, guide, *args, **kwargs)
        return weights.model_trace, weights.guide_trace

    def needs_traces(self) -> bool:
        """Whether the loss needs more than ``log_w`` (traces, fixed-latent densities). By default:
        whenever a subclass changes how weights are made or differentiated; a subclass that knows
        better (IWAE with the standard estimator) says so."""
        return (type(self).log_weights is not LogWeightObjective.log_weights
                or type(self).surrogate_per_datapoint is not LogWeightObjective.surrogate_per_datapoint)

    def _weights_for_loss(self, model, guide, *args, **kwargs) -> LogWeights:
        """The fast path (``pyro_air.infer.direct``, identical numbers, no traces) where it applies
        and this objective needs nothing but log w; otherwise the traced primitive."""
        if (not self.needs_traces() and len(args) == 1 and set(kwargs) <= {"num_data"}
                and can_compute_directly(model, guide)):
            return direct_log_weights(model, guide, args[0], self.num_particles, kwargs.get("num_data"))
        return self.log_weights(model, guide, *args, **kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        weights = self._weights_for_loss(model, guide, *args, **kwargs)
        return -weights.scale * self.surrogate_per_datapoint(weights).sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            weights = self._weights_for_loss(model, guide, *args, **kwargs)
            return -weights.scale * self.per_datapoint_bound(weights.log_w).sum().item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
