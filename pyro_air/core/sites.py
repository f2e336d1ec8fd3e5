"""The names the project's own models and guides use (docs/design.md, contract 1).

The project's models sample the latent site ``LATENT_SITE`` and observe ``OBSERVED_SITE``, both
inside the plate ``DATA_PLATE`` (dim -1); its guides sample ``LATENT_SITE`` in the same plate, and a
hierarchical guide adds auxiliary sites ``auxiliary_site(0) ... auxiliary_site(T - 1)``. They say so
with ``PROJECT_STRUCTURE`` (their ``trace_structure``). Nothing else depends on these names: the
objectives and evaluators read a user's model's data plate and sites from its traces
(``pyro_air.infer.structure``) and vectorize particles in a plate named ``PARTICLE_PLATE``, or
``PARTICLE_PLATE + "_1"``, ... where the model or guide has a plate of that name.
"""
from __future__ import annotations

from dataclasses import dataclass

LATENT_SITE = "z"
OBSERVED_SITE = "x"
DATA_PLATE = "data"
PARTICLE_PLATE = "particles"


@dataclass(frozen=True)
class Structure:
    """What the traces of a (model, guide) pair say about it: the deepest plate dim of either
    program (``max_plate_nesting``), the names of their plates, and the data plate's name (None:
    the whole model is one datapoint)."""
    max_plate_nesting: int
    plate_names: frozenset
    data_plate: str | None

    def particle_plate_name(self) -> str:
        """``"particles"``, or ``"particles_1"``, ... when the model or guide has a plate of that name."""
        name, i = PARTICLE_PLATE, 0
        while name in self.plate_names:
            i += 1
            name = f"{PARTICLE_PLATE}_{i}"
        return name


#: the structure of the project's own models and guides: one plate, "data", at dim -1
PROJECT_STRUCTURE = Structure(1, frozenset({DATA_PLATE}), DATA_PLATE)


def auxiliary_site(t: int) -> str:
    """The name of the t-th auxiliary variable of a hierarchical guide: ``"z_t"``."""
    return f"{LATENT_SITE}_{int(t)}"
