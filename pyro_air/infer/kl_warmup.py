"""KL warm-up (beta-annealing; AVO paper Eq. 2; Sonderby et al. 2016) for any objective.

    E_q[ beta (log p(z) - log q(z | x)) + log p(x | z) ],   beta = schedule(progress)     (Eq. 2)

Every *latent* (unobserved) site of the model and every site of the guide gets the extra scale
beta, which the log-weight primitive applies to that site's log density inside the weight. For a
hierarchical guide that includes the auxiliary terms log r_t - log q_t (its entropy bound), which
is what the paper anneals for the energies (Appendix D). The wrapped objective's bound (ELBO,
IWAE, ...) is then computed on these tempered weights; at beta = 1 it is the plain objective.

A wrapped objective's own state (loss-calibrated AVO's stream of step choices) travels through
``state_dict`` / ``load_state_dict``, so a run resumed from its checkpoint makes the choices an
uninterrupted run makes; beta itself is a function of the training progress, which the loop sets.
"""
from __future__ import annotations

import pyro.infer
from pyro.poutine.messenger import Messenger

from pyro_air.infer.log_weights import extend_model
from pyro_air.infer.registry import OBJECTIVES
from pyro_air.infer.schedules import LinearSchedule, Schedule


class LatentScale(Messenger):
    """Multiplies the scale of every unobserved sample site by ``beta``."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.beta * msg["scale"]


class _Scaled:
    """``fn`` run under ``LatentScale(beta)``; other attributes are ``fn``'s (so hooks still work)."""

    def __init__(self, fn, beta: float):
        self.fn, self.beta = fn, beta
        self.__wrapped__ = fn   # the same plates and sites: objectives key their structure on fn

    def __getattr__(self, name):
        return getattr(self.__dict__["fn"], name)

    def __call__(self, *args, **kwargs):
        with LatentScale(self.beta):
            return self.fn(*args, **kwargs)


class KLWarmup(pyro.infer.ELBO):
    """``objective`` with beta * (log p(z) - log q) where beta follows ``schedule`` over training."""

    def __init__(self, objective, schedule: Schedule | None = None):
        if not hasattr(objective, "differentiable_loss"):
            raise ValueError(f"KLWarmup wraps an objective (e.g. pyro_air.infer.MonteCarloELBO()), got {objective!r}")
        if schedule is not None and not callable(schedule):
            raise ValueError(f"schedule must map progress in [0, 1] to beta, got {schedule!r}")
        self.objective = objective
        self.schedule = schedule if schedule is not None else LinearSchedule(0.0, 1.0, 0.5)
        self.progress = 0.0
        super().__init__(num_particles=objective.num_particles, max_plate_nesting=1, vectorize_particles=True)

    @property
    def beta(self) -> float:
        return float(self.schedule(self.progress))

    def set_progress(self, progress: float) -> None:
        self.progress = float(progress)
        if hasattr(self.objective, "set_progress"):
            self.objective.set_progress(progress)

    def state_dict(self) -> dict:
        """The wrapped objective's state (``{}`` when it keeps none), for the training checkpoint."""
        inner = getattr(self.objective, "state_dict", None)
        return {"objective": inner()} if inner is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "objective" in state and hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(state["objective"])

    def _tempered(self, model, guide):
        model = extend_model(model, guide)  # before wrapping, while the guide's hook is visible
        return _Scaled(model, self.beta), _Scaled(guide, self.beta)

    def _get_trace(self, model, guide, args, kwargs):
        return self.objective._get_trace(*self._tempered(model, guide), args, kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs):
        return self.objective.differentiable_loss(*self._tempered(model, guide), *args, **kwargs)

    def loss(self, model, guide, *args, **kwargs):
        return self.objective.loss(*self._tempered(model, guide), *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs):
        return self.objective.loss_and_grads(*self._tempered(model, guide), *args, **kwargs)


@OBJECTIVES.register("kl-warmup")
def kl_warmup(objective: str = "elbo", objective_cfg: dict | None = None, beta_start: float = 0.0,
              fraction: float = 0.5, num_particles: int | None = None) -> KLWarmup:
    """KL warm-up of a named objective: beta linear from ``beta_start`` to 1 over ``fraction``."""
    cfg = dict(objective_cfg or {})
    if num_particles is not None:
        cfg.setdefault("num_particles", num_particles)
    return KLWarmup(OBJECTIVES.build(objective, **cfg), LinearSchedule(beta_start, 1.0, fraction))
