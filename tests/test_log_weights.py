"""The shared primitive (pyro_air/infer/log_weights.py): [K, B] log importance weights for any model and guide,
the subsampling scale kept apart, global terms, fixed-latent densities, and the refusals."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import log_importance_weights
from pyro_air.infer.log_weights import global_sites_trace
from tests.outside_models import scale_global_guide, scale_global_model


def test_exact_guide_makes_every_weight_log_px(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    lw = log_importance_weights(model, exact_guide, x, num_particles=3, num_data=160)
    assert lw.log_w.shape == (3, len(x)) and lw.scale == 10.0
    assert torch.allclose(lw.log_w, model.exact_log_likelihood(x).expand(3, -1), atol=1e-4)


def test_each_weight_is_log_p_of_x_and_its_draw_minus_log_q(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)
    weights = log_importance_weights(model, guide, x, num_particles=5, num_data=64)
    z = weights.guide_trace.nodes["z"]["value"]
    assert z.shape == (5, 16, 2) and weights.num_particles == 5 and weights.vectorized
    with torch.no_grad():
        expected = model.log_joint(x, z) - guide.posterior(x).log_prob(z)
    torch.testing.assert_close(weights.log_w.detach(), expected, atol=1e-4, rtol=1e-5)  # unscaled: N / B is apart
    torch.testing.assert_close(weights.site_terms(weights.guide_trace.nodes["z"]).detach(),
                               guide.posterior(x).log_prob(z).detach())


def test_particles_in_sequence_give_the_vectorized_numbers(linear_gaussian):
    """A program that cannot broadcast runs K times; the draws come from the same stream in the same order."""
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)
    torch.manual_seed(0)
    together = log_importance_weights(model, guide, x, num_particles=4, vectorize=True)
    torch.manual_seed(0)
    apart = log_importance_weights(model, guide, x, num_particles=4, vectorize=False)
    assert not apart.vectorized and apart.log_w.shape == (4, 16)
    torch.testing.assert_close(apart.log_w, together.log_w, atol=1e-5, rtol=1e-6)


def test_an_extra_scale_weights_a_sites_density_inside_the_weight(linear_gaussian, exact_guide):
    """poutine.scale (KL warm-up, annealing) on a local site multiplies its log density inside log w."""
    model, x = linear_gaussian
    plain = log_importance_weights(model, exact_guide, x, num_particles=2, num_data=32)
    pyro.set_rng_seed(0)
    scaled = log_importance_weights(poutine.scale(model, scale=0.5), exact_guide, x, num_particles=2, num_data=32)
    assert plain.scale == scaled.scale == 2.0
    pyro.set_rng_seed(0)
    reference = log_importance_weights(model, exact_guide, x, num_particles=2)
    log_p = lambda name: reference.site_terms(reference.model_trace.nodes[name])
    log_q = reference.site_terms(reference.guide_trace.nodes["z"])
    torch.testing.assert_close(scaled.log_w, 0.5 * (log_p("z") + log_p("x")) - log_q)


@pytest.mark.parametrize("per_particle,shape", [(True, (4,)), (False, (1,))])
def test_global_sites_make_the_global_term(per_particle, shape):
    x = torch.randn(6, generator=torch.Generator().manual_seed(0))
    weights = log_importance_weights(scale_global_model, scale_global_guide, x, num_particles=4,
                                     globals_per_particle=per_particle)
    s_model, s_guide = weights.model_trace.nodes["s"], weights.guide_trace.nodes["s"]
    expected = (s_model["fn"].log_prob(s_model["value"]) - s_guide["fn"].log_prob(s_guide["value"])).reshape(-1)
    assert weights.global_term.shape == shape
    torch.testing.assert_close(weights.global_term, expected)
    kept = global_sites_trace(weights)
    assert list(kept.nodes) == ["s"]


def test_replayed_globals_take_the_given_values():
    x = torch.randn(6, generator=torch.Generator().manual_seed(0))
    first = log_importance_weights(scale_global_model, scale_global_guide, x, num_particles=3, globals_per_particle=False)
    again = log_importance_weights(scale_global_model, scale_global_guide, x, num_particles=3, globals_per_particle=False,
                                   replay_globals=global_sites_trace(first))
    assert torch.equal(again.guide_trace.nodes["s"]["value"], first.guide_trace.nodes["s"]["value"])
    assert torch.equal(again.global_term, first.global_term)


def test_fixed_latent_densities_equal_the_densities_and_carry_no_path_gradient(linear_gaussian):
    model, x = linear_gaussian
    loc_shift = torch.tensor(0.3, requires_grad=True)

    def guide(x, num_data=None):
        post = model.exact_posterior(x)
        with pyro.plate("data", num_data or len(x), subsample=x):
            q = dist.MultivariateNormal(post.loc.detach() + loc_shift, scale_tril=post.scale_tril.detach())
            pyro.sample("z", q)

    weights = log_importance_weights(model, guide, x, num_particles=3, fixed_latent_densities=True)
    log_q = weights.site_terms(weights.guide_trace.nodes["z"])
    torch.testing.assert_close(weights.log_q_fixed, log_q)
    torch.testing.assert_close(weights.log_p_fixed, weights.log_w + log_q, atol=1e-4, rtol=1e-5)
    # at fixed z the model's density does not depend on the guide's parameter; through z it does
    assert torch.autograd.grad(weights.log_p_fixed.sum(), loc_shift, allow_unused=True)[0] is None
    assert torch.autograd.grad((weights.log_w + log_q).sum(), loc_shift)[0].abs() > 0


@pytest.mark.filterwarnings("ignore:Found non-auxiliary vars in guide but not model")
def test_a_guide_site_the_model_does_not_score_is_refused(linear_gaussian):
    model, x = linear_gaussian

    def guide(x, num_data=None):
        post = model.exact_posterior(x)
        with pyro.plate("data", len(x), subsample=x):
            pyro.sample("z", dist.MultivariateNormal(post.loc, scale_tril=post.scale_tril))
            pyro.sample("u", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError) as err:
        log_importance_weights(model, guide, x, num_particles=2)
    assert str(err.value) == ("guide site 'u' has no counterpart in the model; an auxiliary variable must be scored by "
                              "the model side (wrap the model with the guide's extended model)")


def test_a_discrete_guide_site_is_refused_where_rsample_is_required():
    x = torch.randn(5, generator=torch.Generator().manual_seed(0))

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Bernoulli(0.4))

    with pytest.raises(ValueError, match=r"^guide site 'z' \(Bernoulli\) is not reparameterizable; this objective "
                                         r"needs rsample: train with infer.MonteCarloELBO"):
        log_importance_weights(model, guide, x, num_particles=2)
    assert log_importance_weights(model, guide, x, num_particles=2, require_reparam=False).log_w.shape == (2, 5)


def test_a_guide_that_disagrees_with_itself_on_replay_is_refused(linear_gaussian):
    model, x = linear_gaussian
    calls = []

    def guide(x, num_data=None):
        calls.append(1)
        post = model.exact_posterior(x)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.MultivariateNormal(post.loc + len(calls), scale_tril=post.scale_tril))

    with pytest.raises(ValueError, match="the guide gives a different log q\\(z \\| x\\) when replayed"):
        log_importance_weights(model, guide, x, num_particles=2, fixed_latent_densities=True)


def test_no_particles_is_refused(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="num_particles must be >= 1, got 0"):
        log_importance_weights(model, exact_guide, x, num_particles=0)
