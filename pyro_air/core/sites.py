"""The names of the model/guide contract (docs/design.md, contract 1).

A model samples the latent site ``LATENT_SITE`` and observes ``OBSERVED_SITE``, both inside the
plate ``DATA_PLATE`` (dim -1). A guide samples ``LATENT_SITE`` in the same plate; a hierarchical
guide adds auxiliary sites ``auxiliary_site(0) ... auxiliary_site(T - 1)``. Objectives vectorize
importance samples in the plate ``PARTICLE_PLATE`` (dim -2).
"""
from __future__ import annotations

LATENT_SITE = "z"
OBSERVED_SITE = "x"
DATA_PLATE = "data"
PARTICLE_PLATE = "particles"


def auxiliary_site(t: int) -> str:
    """The name of the t-th auxiliary variable of a hierarchical guide: ``"z_t"``."""
    return f"{LATENT_SITE}_{int(t)}"
