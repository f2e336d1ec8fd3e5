"""The linear-Gaussian model (pyro_air/models/linear_gaussian.py; probabilistic PCA): its exact p(x) and
p(z | x) against Bayes' rule and the joint Gaussian."""
import pytest
import torch

from pyro_air import models
from pyro_air.models import LinearGaussianModel


def _model(**kwargs):
    return LinearGaussianModel(**{"x_dim": 5, "z_dim": 2, "noise_scale": 0.5, "seed": 1, **kwargs})


def test_bayes_rule_holds_at_every_z():
    """log p(x) = log p(x, z) - log p(z | x) for any z: the marginal and the posterior agree with the joint."""
    model = _model()
    with torch.no_grad():
        x = model.marginal().sample((6,))
        z = torch.randn(4, 6, 2, generator=torch.Generator().manual_seed(0))
        from_bayes = model.log_joint(x, z) - model.exact_posterior(x).log_prob(z)
        torch.testing.assert_close(from_bayes, model.exact_log_likelihood(x).expand(4, -1), atol=1e-4, rtol=1e-5)


def test_the_posterior_is_the_conditional_of_the_joint_gaussian():
    """[z, x] ~ N([0, b], [[I, W^T], [W, W W^T + s^2 I]]): p(z | x) = N(W^T C^-1 (x - b), I - W^T C^-1 W)."""
    model = _model()
    with torch.no_grad():
        w, b = model.weight.double(), model.bias.double()
        c = w @ w.T + 0.25 * torch.eye(5, dtype=torch.float64)
        x = model.marginal().sample((3,))
        post = model.exact_posterior(x)
        gain = w.T @ torch.linalg.inv(c)
        torch.testing.assert_close(post.loc.double(), (x.double() - b) @ gain.T, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(post.covariance_matrix[0].double(), torch.eye(2, dtype=torch.float64) - gain @ w,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.marginal().covariance_matrix.double(), c, atol=1e-5, rtol=1e-5)


def test_the_marginal_is_the_distribution_of_simulated_data():
    model = _model()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        z = torch.randn(40000, 2, generator=gen)
        x = z @ model.weight.T + model.bias + 0.5 * torch.randn(40000, 5, generator=gen)
    torch.testing.assert_close(x.mean(0), model.bias.detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(x.T.cov(), model.marginal().covariance_matrix.detach(), atol=0.08, rtol=0.03)


def test_the_exact_log_likelihood_trains_the_parameters():
    model = _model()
    x = model.marginal().sample((8,)).detach()
    model.exact_log_likelihood(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_a_seed_or_given_weights_fix_the_model():
    assert torch.equal(_model(seed=3).weight, _model(seed=3).weight)
    assert not torch.equal(_model(seed=3).weight, _model(seed=4).weight)
    w, b = torch.ones(5, 2), torch.zeros(5)
    given = _model(weight=w, bias=b, noise_scale=0.3)
    assert torch.equal(given.weight, w) and torch.equal(given.bias, b)
    assert given.noise_scale.item() == pytest.approx(0.3)


def test_noise_scale_must_be_positive():
    with pytest.raises(ValueError, match="noise_scale must be > 0, got -0.5"):
        models.build("linear-gaussian", noise_scale=-0.5)
