"""Objectives as ``pyro.infer.ELBO`` subclasses, built on the shared log-weight primitive."""
from pyro_air.core.registry import Registry
from pyro_air.infer.avo import AVO_ELBO
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.consistency import ConsistencyRegularized
from pyro_air.infer.cubo import CUBO, cubo_bound
from pyro_air.infer.elbo import MonteCarloELBO
from pyro_air.infer.free_bits import FreeBitsELBO
from pyro_air.infer.infovae import InfoVAE_ELBO
from pyro_air.infer.iwae import IWAE_ELBO, iwae_bound
from pyro_air.infer.kl_warmup import KLWarmup
from pyro_air.infer.log_weights import LogWeights, extend_model, log_importance_weights
from pyro_air.infer.miwae import (
    CIWAE_ELBO,
    MIWAE_ELBO,
    PIWAE_ELBO,
    ciwae_bound,
    miwae_bound,
)
from pyro_air.infer.renyi import RenyiELBO, renyi_bound
from pyro_air.infer.schedules import ConstantSchedule, LinearSchedule, Schedule

OBJECTIVES = Registry("objective")
OBJECTIVES.register("elbo")(MonteCarloELBO)
OBJECTIVES.register("iwae")(IWAE_ELBO)
OBJECTIVES.register("infovae")(InfoVAE_ELBO)
OBJECTIVES.register("renyi")(RenyiELBO)
OBJECTIVES.register("cubo")(CUBO)
OBJECTIVES.register("avo")(AVO_ELBO)
OBJECTIVES.register("free-bits")(FreeBitsELBO)
OBJECTIVES.register("miwae")(MIWAE_ELBO)
OBJECTIVES.register("piwae")(PIWAE_ELBO)
OBJECTIVES.register("ciwae")(CIWAE_ELBO)


@OBJECTIVES.register("kl-warmup")
def _kl_warmup(objective: str = "elbo", objective_cfg: dict | None = None, beta_start: float = 0.0,
               fraction: float = 0.5, num_particles: int | None = None) -> KLWarmup:
    """KL warm-up of a named objective: beta linear from ``beta_start`` to 1 over ``fraction``."""
    cfg = dict(objective_cfg or {})
    if num_particles is not None:
        cfg.setdefault("num_particles", num_particles)
    return KLWarmup(OBJECTIVES.build(objective, **cfg), LinearSchedule(beta_start, 1.0, fraction))


@OBJECTIVES.register("consistency")
def _consistency(objective: str = "elbo", objective_cfg: dict | None = None, weight: float = 1.0,
                 num_particles: int | None = None) -> ConsistencyRegularized:
    """A named objective plus the CR-VAE penalty weight * (N / B) * sum_b guide.penalty(x)_b."""
    cfg = dict(objective_cfg or {})
    if num_particles is not None:
        cfg.setdefault("num_particles", num_particles)
    return ConsistencyRegularized(OBJECTIVES.build(objective, **cfg), weight)


def build(name: str, **cfg) -> LogWeightObjective:
    """Build an objective by its registry name, e.g. ``build("iwae", num_particles=8)``."""
    return OBJECTIVES.build(name, **cfg)


__all__ = [
    "AVO_ELBO",
    "CIWAE_ELBO",
    "CUBO",
    "IWAE_ELBO",
    "MIWAE_ELBO",
    "OBJECTIVES",
    "ConsistencyRegularized",
    "PIWAE_ELBO",
    "ConstantSchedule",
    "FreeBitsELBO",
    "InfoVAE_ELBO",
    "KLWarmup",
    "LinearSchedule",
    "LogWeightObjective",
    "LogWeights",
    "MonteCarloELBO",
    "RenyiELBO",
    "Schedule",
    "build",
    "ciwae_bound",
    "cubo_bound",
    "extend_model",
    "iwae_bound",
    "log_importance_weights",
    "miwae_bound",
    "renyi_bound",
]
