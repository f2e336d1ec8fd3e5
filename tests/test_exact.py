"""The exact posterior of the linear-Gaussian model as a guide (pyro_air/guides/exact.py), and its shifted
and rescaled versions, against closed forms."""
import math

import torch
from torch.distributions import kl_divergence

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide


def test_the_guide_is_the_models_exact_posterior_and_owns_no_parameters(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    q, p = exact_guide.posterior(x), model.exact_posterior(x)
    assert torch.equal(q.loc, p.loc) and torch.equal(q.covariance_matrix, p.covariance_matrix)
    assert list(exact_guide.parameters()) == []  # the model's parameters stay the model's
    assert (exact_guide.x_dim, exact_guide.z_dim) == (model.x_dim, model.z_dim)


def test_every_importance_weight_is_p_of_x(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    log_w = infer.log_importance_weights(model, exact_guide, x, num_particles=4).log_w
    torch.testing.assert_close(log_w, model.exact_log_likelihood(x).detach().expand(4, -1), atol=1e-4, rtol=0)


def test_a_shift_moves_the_mean_and_a_factor_scales_the_covariance(linear_gaussian):
    model, x = linear_gaussian
    p = model.exact_posterior(x)
    q = ExactPosteriorGuide(model, scale_factor=1.5, loc_shift=-0.4).posterior(x)
    torch.testing.assert_close(q.loc, p.loc - 0.4)
    torch.testing.assert_close(q.covariance_matrix, 2.25 * p.covariance_matrix)


def test_the_elbo_of_a_shifted_guide_is_log_px_minus_the_closed_form_kl(linear_gaussian):
    """ELBO(x) = log p(x) - KL(q(z|x) || p(z|x)), with the KL of two Gaussians in closed form."""
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.7, loc_shift=0.5)
    with torch.no_grad():
        expected = model.exact_log_likelihood(x) - kl_divergence(guide.posterior(x), model.exact_posterior(x))
        torch.manual_seed(0)
        log_w = infer.log_importance_weights(model, guide, x, num_particles=4000).log_w
    mean, se = log_w.mean(0), log_w.std(0) / math.sqrt(4000)
    assert ((mean - expected).abs() < 4 * se).all(), ((mean - expected) / se)
    assert (expected < model.exact_log_likelihood(x).detach() - 0.1).all()  # the KL is resolvable here
