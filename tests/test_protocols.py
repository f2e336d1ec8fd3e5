"""The model and guide protocols (pyro_air/core/protocols.py): what the project's classes offer, and what a
user's own class implements to be treated the same."""
import pyro
import pyro.distributions as dist
import torch

from pyro_air import guides, infer, models
from pyro_air.core.protocols import DirectlyScoredGuide, DirectlyScoredModel, Guide, Model, Posterior
from pyro_air.core.scoring import DiagonalNormalPosterior, DistributionPosterior


class OwnModel:
    """A user's model written from scratch: a Pyro program with the protocol's attributes, no base class."""
    x_dim, z_dim = 3, 2

    def __call__(self, x, num_data=None):
        with pyro.plate("data", num_data or len(x), subsample=x):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True).expand(*z.shape[:-1], 3), 1.0).to_event(1), obs=x)

    def validate(self, x):
        if x.shape[-1] != self.x_dim:
            raise ValueError("OwnModel expects x of shape [B, 3]")


class OwnGuide:
    x_dim, z_dim = 3, 2

    def __call__(self, x, num_data=None):
        with pyro.plate("data", num_data or len(x), subsample=x):
            pyro.sample("z", dist.Normal(x[:, :2] * 0.5, 0.8).to_event(1))

    def validate(self, x):
        pass


def test_the_projects_models_and_guides_implement_the_protocols():
    model = models.build("bernoulli-vae", x_dim=6, z_dim=2, hidden=(4,))
    guide = guides.build("gaussian", x_dim=6, z_dim=2, hidden=(4,))
    assert isinstance(model, Model) and isinstance(model, DirectlyScoredModel)
    assert isinstance(guide, Guide) and isinstance(guide, DirectlyScoredGuide)
    assert isinstance(guide.direct_posterior(torch.zeros(3, 6)), Posterior)


def test_both_posterior_kinds_are_posteriors():
    loc, scale = torch.zeros(4, 2), torch.ones(4, 2)
    assert isinstance(DiagonalNormalPosterior(loc, scale), Posterior)
    assert isinstance(DistributionPosterior(dist.Normal(loc, scale).to_event(1)), Posterior)

    class DrawsOnly:
        def rsample(self, num_particles):
            return torch.zeros(num_particles, 4, 2)
    assert not isinstance(DrawsOnly(), Posterior)  # a posterior also scores its draws


def test_a_plain_function_is_a_pyro_program_but_not_a_model_of_the_protocol():
    def model(x, num_data=None):
        pass
    assert not isinstance(model, Model)


def test_a_users_class_satisfies_the_protocol_without_direct_scoring_and_trains_through_tracing():
    model, guide = OwnModel(), OwnGuide()
    assert isinstance(model, Model) and isinstance(guide, Guide)
    assert not isinstance(model, DirectlyScoredModel) and not isinstance(guide, DirectlyScoredGuide)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(1)
    ours = infer.MonteCarloELBO(num_particles=3).loss(model, guide, x)
    pyro.set_rng_seed(1)
    pyros = pyro.infer.Trace_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1).loss(model, guide, x)
    assert ours == pyros
