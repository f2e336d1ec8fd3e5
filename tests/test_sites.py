"""The project's site and plate names (pyro_air/core/sites.py) and the particle plate's name."""
import dataclasses

import pyro
import pytest
import torch

from pyro_air import guides, models
from pyro_air.core.sites import (
    DATA_PLATE,
    LATENT_SITE,
    OBSERVED_SITE,
    PARTICLE_PLATE,
    PROJECT_STRUCTURE,
    Structure,
    auxiliary_site,
)


@pytest.mark.parametrize("plates,name", [
    (set(), "particles"),
    ({"data"}, "particles"),
    ({"data", "particles"}, "particles_1"),
    ({"particles", "particles_1", "particles_3"}, "particles_2"),
])
def test_the_particle_plate_takes_a_name_no_user_plate_has(plates, name):
    assert Structure(1, frozenset(plates), "data").particle_plate_name() == name


def test_the_projects_structure_is_one_data_plate_at_dim_minus_one():
    assert PROJECT_STRUCTURE == Structure(1, frozenset({DATA_PLATE}), DATA_PLATE)
    assert PROJECT_STRUCTURE.particle_plate_name() == PARTICLE_PLATE
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROJECT_STRUCTURE.data_plate = "other"


def test_auxiliary_sites_are_numbered_latent_sites():
    assert [auxiliary_site(t) for t in range(3)] == ["z_0", "z_1", "z_2"]
    assert auxiliary_site(torch.tensor(4)) == "z_4"


def test_the_projects_programs_use_these_names():
    model = models.build("bernoulli-vae", x_dim=6, z_dim=2, hidden=(4,))
    guide = guides.build("hierarchical", x_dim=6, z_dim=2, hidden=(4,), num_transitions=2)
    x = torch.bernoulli(torch.full((3, 6), 0.5), generator=torch.Generator().manual_seed(0))
    model_trace = pyro.poutine.trace(model).get_trace(x)
    guide_trace = pyro.poutine.trace(guide).get_trace(x)
    samples = lambda tr: {n: s for n, s in tr.nodes.items() if s["type"] == "sample" and n != DATA_PLATE}
    assert set(samples(model_trace)) == {LATENT_SITE, OBSERVED_SITE}
    assert set(samples(guide_trace)) == {auxiliary_site(0), auxiliary_site(1), LATENT_SITE}
    for site in [*samples(model_trace).values(), *samples(guide_trace).values()]:
        assert [(f.name, f.dim) for f in site["cond_indep_stack"]] == [(DATA_PLATE, -1)]
    assert model.trace_structure == guide.trace_structure == PROJECT_STRUCTURE
