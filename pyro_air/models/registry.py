"""The model registry: each model registers itself where it is defined (``@MODELS.register(name)``
at the class, with what it declares about itself: ``MODELS.declares``); ``pyro_air.models`` only
imports the modules."""
from __future__ import annotations

from pyro_air.core.registry import Registry
from pyro_air.models.base import LatentVariableModel

# What a model declares where it registers, read by ``pyro_air.runs.vae_spec`` (and the command line's
# ``--likelihood`` choices) to pick the decoder of a run spec:
MODELS = Registry("model", declares={
    "likelihood": None,  # the decoder's p(x | z) a run spec names it by: "bernoulli", "gaussian", ...
    "net": None,         # its networks: "mlp" or "conv" (a run spec's ``net``)
})


def build(name: str, **cfg) -> LatentVariableModel:
    """Build a model by its registry name, e.g. ``build("bernoulli-vae", z_dim=50)``."""
    return MODELS.build(name, **cfg)
