"""Objectives as ``pyro.infer.ELBO`` subclasses, built on the shared log-weight primitive."""
from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.cubo import CUBO, cubo_bound
from pyro_air.infer.elbo import ELBO
from pyro_air.infer.iwae import IWAE_ELBO, iwae_bound
from pyro_air.infer.log_weights import LogWeights, log_importance_weights
from pyro_air.infer.renyi import RenyiELBO, renyi_bound
from pyro_air.registry import Registry

OBJECTIVES = Registry("objective")
OBJECTIVES.register("elbo")(ELBO)
OBJECTIVES.register("iwae")(IWAE_ELBO)
OBJECTIVES.register("renyi")(RenyiELBO)
OBJECTIVES.register("cubo")(CUBO)


def build(name: str, **cfg) -> LogWeightObjective:
    """Build an objective by its registry name, e.g. ``build("iwae", num_particles=8)``."""
    return OBJECTIVES.build(name, **cfg)


__all__ = [
    "LogWeightObjective", "ELBO", "IWAE_ELBO", "iwae_bound", "LogWeights",
    "log_importance_weights", "OBJECTIVES", "build",
    "RenyiELBO", "renyi_bound", "CUBO", "cubo_bound",
]
