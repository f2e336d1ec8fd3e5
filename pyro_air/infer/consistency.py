"""Consistency regularization of the encoder (CR-VAE; Sinha & Dieng, NeurIPS 2021) for any objective.

With a guide that offers ``penalty(x) -> Tensor[B]`` (the per-datapoint regularizer R(phi; x_b);
``pyro_air.guides.ConsistencyEncoder``: R = KL(q(z | t(x)) || q(z | x)), CR-VAE Eq. 3), the loss is

    loss = loss_objective(x_B) + lambda * (N / B) * sum_b R(phi; x_b)                     (CR-VAE, Eq. 4)

i.e. the negative of  sum_n [ bound(x_n) - lambda R(phi; x_n) ]  estimated on the minibatch with the
same subsample scale N / B as the bound. The penalty is not part of q(z | x): the log weights and
every evaluator are the wrapped objective's; ``loss`` returns the penalized loss (what is minimized).
With lambda = 0 this is the wrapped objective exactly (the penalty is not even computed, so the
random stream is untouched).
"""
from __future__ import annotations

import pyro.infer
import torch

from pyro_air.core.plates import data_size
from pyro_air.core.validation import check_positive
from pyro_air.infer.registry import OBJECTIVES


class ConsistencyRegularized(pyro.infer.ELBO):
    """``objective`` plus ``weight * (N / B) * sum_b guide.penalty(x)_b`` (module docstring)."""

    def __init__(self, objective, weight: float = 1.0):
        if not hasattr(objective, "differentiable_loss"):
            raise ValueError(f"ConsistencyRegularized wraps an objective (e.g. pyro_air.infer.MonteCarloELBO()), got {objective!r}")
        try:
            self.weight = check_positive(weight, "weight (lambda, the consistency penalty's weight)", allow_zero=True)
        except ValueError as err:
            raise ValueError(f"{err}; CR-VAE uses lambda around 0.1-1 (0 = no penalty)") from None
        self.objective = objective
        super().__init__(num_particles=objective.num_particles, max_plate_nesting=1, vectorize_particles=True)

    def set_progress(self, progress: float) -> None:
        if hasattr(self.objective, "set_progress"):
            self.objective.set_progress(progress)

    def _get_trace(self, model, guide, args, kwargs):
        return self.objective._get_trace(model, guide, args, kwargs)

    def penalty_loss(self, guide, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        """weight * (N / B) * sum_b penalty_b (a 0-dim tensor)."""
        penalty = getattr(guide, "penalty", None)
        if penalty is None:
            raise TypeError(f"ConsistencyRegularized needs a guide with penalty(x) (e.g. pyro_air.guides."
                            f"ConsistencyEncoder); {type(guide).__name__} has none")
        values = penalty(x)
        if values.shape != x.shape[:1]:
            raise ValueError(f"guide.penalty(x) must return one value per datapoint, shape [{x.shape[0]}], "
                             f"got {list(values.shape)}")
        return self.weight * (data_size(x, num_data) / x.shape[0]) * values.sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = self.objective.differentiable_loss(model, guide, *args, **kwargs)
        if self.weight == 0:
            return loss
        return loss + self.penalty_loss(guide, args[0], kwargs.get("num_data"))

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


@OBJECTIVES.register("consistency")
def consistency(objective: str = "elbo", objective_cfg: dict | None = None, weight: float = 1.0,
                num_particles: int | None = None) -> ConsistencyRegularized:
    """A named objective plus the CR-VAE penalty weight * (N / B) * sum_b guide.penalty(x)_b."""
    cfg = dict(objective_cfg or {})
    if num_particles is not None:
        cfg.setdefault("num_particles", num_particles)
    return ConsistencyRegularized(OBJECTIVES.build(objective, **cfg), weight)
