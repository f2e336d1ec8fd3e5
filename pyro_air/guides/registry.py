"""The guide registry: each guide registers itself where it is defined (``@GUIDES.register(name)``
at the class or at its builder, with what it declares about itself: ``GUIDES.declares``);
``pyro_air.guides`` only imports the modules.

Wrappers (denoising, consistency, semi-amortized) take a built encoder; their registry builders
turn ``encoder=`` (a registered name with its options, a ``{"name", "cfg"}`` dict, or an instance)
into one with ``build_encoder``, the one resolver.
"""
from __future__ import annotations

from pyro_air.core.registry import Registry
from pyro_air.guides.base import AmortizedGuide

# What a guide declares where it registers (``@GUIDES.register("gaussian", hidden=True, ...)``), read by
# ``pyro_air.runs.vae_spec`` to fill a run spec's guide options from the decoder's:
GUIDES = Registry("guide", declares={
    "hidden": False,  # its builder takes ``hidden``, which a run spec defaults to the decoder's sizes
    "conv": None,     # the name of its convolutional twin, which replaces it in a run spec with net="conv"
    "image": False,   # it convolves images: a run spec with net="conv" gives it ``image_shape`` and one
                      # dense width as ``hidden``
    "wraps": None,    # it wraps an encoder (its option ``encoder=``, this name by default), to which a
                      # run spec's size defaults apply as if it were the guide
})


def build(name: str, **cfg) -> AmortizedGuide:
    """Build a guide by its registry name, e.g. ``build("gaussian", z_dim=50)``."""
    return GUIDES.build(name, **cfg)


def build_encoder(encoder, encoder_cfg: dict) -> AmortizedGuide:
    """An encoder from a registry name (options ``encoder_cfg``), a ``{"name", "cfg"}`` dict, or an instance."""
    if isinstance(encoder, AmortizedGuide):
        if encoder_cfg:
            raise ValueError(f"encoder options {sorted(encoder_cfg)} given with an already built encoder; "
                             "pass either a built encoder or a name with options")
        return encoder
    if isinstance(encoder, dict):
        if "name" not in encoder:
            raise ValueError(f"encoder={encoder!r} needs a 'name', e.g. {{'name': 'gaussian', 'cfg': {{}}}}")
        return GUIDES.build(encoder["name"], **{**encoder.get("cfg", {}), **encoder_cfg})
    return GUIDES.build(encoder, **encoder_cfg)
