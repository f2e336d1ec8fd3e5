"""The importance-weighted bound (pyro_air/infer/iwae.py; Burda et al. 2016; AIR Eq. 20) and its three
gradient estimators: DReG and STL against the standard one (Tucker et al. 2018; Roeder et al. 2017)."""
import math

import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import IWAE_ELBO, iwae_bound
from pyro_air.infer.iwae import path_only_log_weights
from tests.linear_gaussian_guide import NUM_DRAWS, LinearGaussianGuide, draws, grads


def test_the_bound_of_known_weights():
    log_w = torch.tensor([[0.0, -1.0], [math.log(3.0), -1.0]])
    torch.testing.assert_close(iwae_bound(log_w), torch.tensor([math.log(2.0), -1.0]))  # log mean (1, 3); one value
    assert torch.equal(iwae_bound(log_w[:1]), log_w[0])  # K = 1: the ELBO's estimate
    big = torch.tensor([[1e4, 1e4 + math.log(3.0)]]).T  # no overflow: log-sum-exp
    torch.testing.assert_close(iwae_bound(big), torch.tensor([1e4 + math.log(2.0)]))


def test_the_estimate_is_never_below_the_elbos_on_the_same_draws():
    log_w = torch.randn(8, 100, generator=torch.Generator().manual_seed(0)) * 3
    assert (iwae_bound(log_w) >= log_w.mean(0) - 1e-6).all()  # log-mean-exp >= mean (Jensen)
    assert (iwae_bound(log_w) <= log_w.max(0).values).all()


def test_iwae_increases_with_k(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.6, loc_shift=0.4)
    torch.manual_seed(1)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=64 * 200).log_w.detach()
    log_w = log_w.reshape(200, 64, len(x))
    values = [torch.stack([iwae_bound(lw[:k]) for lw in log_w]).mean().item() for k in (1, 4, 16, 64)]
    assert values == sorted(values), values
    assert values[-1] < model.exact_log_likelihood(x).mean().item()


@pytest.mark.parametrize("make", [lambda e: IWAE_ELBO(num_particles=3, estimator=e),
                                  lambda e: infer.MIWAE_ELBO(num_groups=2, group_size=2, estimator=e)],
                         ids=["iwae", "miwae"])
@pytest.mark.parametrize("estimator,fast", [("standard", True), ("dreg", False), ("stl", False)])
def test_only_the_standard_estimator_needs_nothing_but_log_weights(linear_gaussian, make, estimator, fast):
    model, x = linear_gaussian
    objective = make(estimator)
    assert objective.needs_only_log_weights is fast
    weights = objective.log_weights(model, ExactPosteriorGuide(model, loc_shift=0.2), x)
    assert (weights.log_q_fixed is None) is fast
    if not fast:  # the path-only weights are the weights in value
        assert torch.equal(path_only_log_weights(weights), weights.log_w)


def test_guide_equals_exact_posterior_at_init(linear_gaussian):
    model, x = linear_gaussian
    q, p = LinearGaussianGuide(model).posterior(x), model.exact_posterior(x)
    assert torch.allclose(q.loc, p.loc, atol=1e-5) and torch.allclose(q.covariance_matrix, p.covariance_matrix,
                                                                      atol=1e-5)


@pytest.mark.parametrize("estimator,k", [("dreg", 5), ("stl", 1)])
def test_path_estimators_are_unbiased_with_lower_variance(linear_gaussian, estimator, k):
    """Same mean as the standard estimator (paired draws: same seeds, same z), lower total variance.

    STL is unbiased for K = 1 only (for K > 1 it is biased, Tucker et al. 2018), so it is tested there.
    """
    model, x = linear_gaussian
    cfg = {"loc_shift": 0.3, "scale_factor": 1.2}
    standard = draws(IWAE_ELBO(k, "standard"), model, x, **cfg)
    path = draws(IWAE_ELBO(k, estimator), model, x, **cfg)
    diff = path - standard
    z = diff.mean(0) / (diff.std(0) / math.sqrt(NUM_DRAWS))
    assert z.abs().max() < 4.5, z
    # the test has power: the mean gradient itself is many standard errors from zero
    assert (standard.mean(0).abs() / (standard.std(0) / math.sqrt(NUM_DRAWS))).max() > 10
    ratio = (path.var(0).sum() / standard.var(0).sum()).item()
    print(f"{estimator} K={k}: total guide-gradient variance / standard = {ratio:.3f}")
    assert ratio < 0.8


@pytest.mark.parametrize("estimator", ["dreg", "stl"])
def test_model_gradient_is_the_standard_one(linear_gaussian, estimator):
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model, loc_shift=0.3, scale_factor=1.2)
    for seed in range(3):
        _, model_standard = grads(IWAE_ELBO(4, "standard"), model, guide, x, seed)
        _, model_path = grads(IWAE_ELBO(4, estimator), model, guide, x, seed)
        assert torch.allclose(model_path, model_standard, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_path_gradients_vanish_at_the_exact_posterior(linear_gaussian, estimator):
    """log w = log p(x) for every z, so the path term is zero; the standard one keeps the score noise."""
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model)
    standard, _ = grads(IWAE_ELBO(3, "standard"), model, guide, x, seed=0)
    path, _ = grads(IWAE_ELBO(3, estimator), model, guide, x, seed=0)
    assert standard.abs().max() > 0.1
    assert path.abs().max() < 1e-3


@pytest.mark.parametrize("build,message", [
    (lambda: IWAE_ELBO(num_particles=0), "num_particles must be an integer >= 1, got 0"),
    (lambda: IWAE_ELBO(num_particles=2, estimator="vimco"),
     "unknown IWAE gradient estimator 'vimco'; choose one of standard, dreg, stl"),
    (lambda: infer.build("iwae", num_particles=2, estimator="DReG"),
     "unknown IWAE gradient estimator 'DReG'; choose one of standard, dreg, stl"),
])
def test_bad_hyperparameters_are_clear_errors(build, message):
    with pytest.raises(ValueError) as err:
        build()
    assert str(err.value) == message
