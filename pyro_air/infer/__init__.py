"""Objectives as ``pyro.infer.ELBO`` subclasses, built on the shared log-weight primitive.

Each objective registers itself where it is defined (``pyro_air.infer.registry``); this file only imports.
"""
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
from pyro_air.infer.registry import OBJECTIVES, build
from pyro_air.infer.renyi import RenyiELBO, renyi_bound
from pyro_air.infer.schedules import ConstantSchedule, LinearSchedule, Schedule

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
