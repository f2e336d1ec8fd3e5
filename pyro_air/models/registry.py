"""The model registry: each model registers itself where it is defined (``@MODELS.register(name)``
at the class); ``pyro_air.models`` only imports the modules."""
from __future__ import annotations

from pyro_air.core.registry import Registry
from pyro_air.models.base import LatentVariableModel

MODELS = Registry("model")


def build(name: str, **cfg) -> LatentVariableModel:
    """Build a model by its registry name, e.g. ``build("bernoulli-vae", z_dim=50)``."""
    return MODELS.build(name, **cfg)
