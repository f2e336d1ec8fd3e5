"""The objective registry: each objective registers itself where it is defined
(``@OBJECTIVES.register(name)`` at the class or at its builder, with what it declares about itself:
``OBJECTIVES.declares``); ``pyro_air.infer`` only imports the modules."""
from __future__ import annotations

from pyro_air.core.registry import Registry

# What an objective declares where it registers, read by ``pyro_air.runs.vae_spec``:
OBJECTIVES = Registry("objective", declares={
    "num_particles": True,  # it takes ``num_particles``, which a run spec sets (``--num-particles``); False
                            # for one that counts its samples otherwise (MIWAE / PIWAE: groups x group size)
})


def build(name: str, **cfg):
    """Build an objective by its registry name, e.g. ``build("iwae", num_particles=8)``."""
    return OBJECTIVES.build(name, **cfg)
