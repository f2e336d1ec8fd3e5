"""The objective registry: each objective registers itself where it is defined
(``@OBJECTIVES.register(name)`` at the class or at its builder); ``pyro_air.infer`` only imports
the modules."""
from __future__ import annotations

from pyro_air.core.registry import Registry

OBJECTIVES = Registry("objective")


def build(name: str, **cfg):
    """Build an objective by its registry name, e.g. ``build("iwae", num_particles=8)``."""
    return OBJECTIVES.build(name, **cfg)
