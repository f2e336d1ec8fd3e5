"""pyro_air.infer.structure: the data plate, max_plate_nesting and plate names read from one trace."""
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air import guides, models
from pyro_air.core.sites import PROJECT_STRUCTURE
from pyro_air.infer.structure import declared_structure, find_data_plate, model_structure


def _pair(outer_dim=-1, subsample=False):
    def model(x):
        with pyro.plate("groups", 2, dim=-2):
            with pyro.plate("items", len(x), subsample_size=2 if subsample else None, dim=outer_dim):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2, 2 if subsample else len(x)))

    return model, lambda x: None


def test_outermost_common_plate_of_the_observations_is_the_data_plate():
    model, guide = _pair()
    s = model_structure(model, guide, (torch.zeros(3),), {})
    assert s.data_plate == "groups" and s.max_plate_nesting == 2 and s.plate_names == {"groups", "items"}


def test_the_one_subsampled_plate_is_the_data_plate():
    model, guide = _pair(subsample=True)
    assert model_structure(model, guide, (torch.zeros(5),), {}).data_plate == "items"


def test_no_observation_in_a_plate_means_one_datapoint():
    def model():
        pyro.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))
    assert model_structure(model, lambda: None, (), {}).data_plate is None


def test_a_named_plate_must_exist():
    model, guide = _pair()
    trace = pyro.poutine.trace(model).get_trace(torch.zeros(3))
    assert find_data_plate(trace, "items") == "items"
    with pytest.raises(ValueError, match="no plate named 'rows'.*groups, items"):
        find_data_plate(trace, "rows")


def test_finding_the_structure_consumes_no_random_draw():
    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    torch.manual_seed(3)
    model_structure(model, guide, (torch.zeros(4),), {})
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))


def test_project_models_and_guides_declare_their_structure_and_the_particle_plate_keeps_its_name():
    model = models.build("bernoulli-vae", x_dim=4, z_dim=2, hidden=(3,))
    guide = guides.build("gaussian", x_dim=4, z_dim=2, hidden=(3,))
    assert declared_structure(model, guide) == PROJECT_STRUCTURE
    assert declared_structure(model, lambda x: None) is None
    assert PROJECT_STRUCTURE.particle_plate_name() == "particles"


def test_a_stated_plate_nesting_runs_the_structure_pass_with_the_particles_in_place():
    """A model that relies on the particle dim being there (it checks its draw's shape) runs when the
    user states max_plate_nesting, as under Pyro's vectorized Trace_ELBO; K = 1 runs plain."""
    from pyro_air import infer

    def model():
        with pyro.plate("groups", 3):
            w = pyro.sample("w", dist.Beta(2.0, 2.0))
            assert w.shape == (5, 1, 3)
            with pyro.plate("rows", 4, dim=-2):
                pyro.sample("y", dist.Bernoulli(w), obs=torch.ones(4, 3))

    def guide():
        a = pyro.param("a", torch.tensor(2.0), constraint=dist.constraints.positive)
        with pyro.plate("groups", 3):
            pyro.sample("w", dist.Beta(a, 2.0))

    pyro.clear_param_store()
    elbo = infer.MonteCarloELBO(num_particles=5, max_plate_nesting=2)
    assert torch.isfinite(torch.tensor(elbo.loss_and_grads(model, guide)))
    structure, vectorized = elbo.structure(model, guide, (), {})[:2]
    assert structure.max_plate_nesting == 2 and structure.data_plate == "groups" and vectorized  # the outermost
    with pytest.raises(ValueError, match="max_plate_nesting"):
        infer.MonteCarloELBO(max_plate_nesting=-1)


def test_a_remembered_structure_is_not_taken_for_another_pair_that_reuses_its_id():
    """Objects created per step (KL warm-up's wrappers) are freed and their ids reused: the remembered
    structure is checked against the pair itself (weak references), never matched by id alone."""
    from pyro_air import infer

    elbo = infer.MonteCarloELBO()

    def pair(plate_name):
        def model(x):
            with pyro.plate(plate_name, len(x)):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)
        return model, lambda x: None

    first = pair("a")
    assert elbo.structure(*first, (torch.zeros(2),), {})[0].data_plate == "a"
    key = next(iter(elbo._structures))
    del first
    second = pair("b")
    elbo._structures[(id(second[0]), id(second[1]))] = elbo._structures.pop(key)   # as if the ids were reused
    assert elbo.structure(*second, (torch.zeros(2),), {})[0].data_plate == "b"
