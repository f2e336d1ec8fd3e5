"""With num_data=N and a batch of B, an objective equals N/B times the batch sum of bounds."""
import pyro
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer.iwae import iwae_bound


@pytest.mark.parametrize("name,bound", [
    ("elbo", lambda lw: lw.mean(0)),
    ("iwae", iwae_bound),
])
def test_objective_scales_outside_the_logsumexp(linear_gaussian, name, bound):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.5, loc_shift=0.3)
    objective = infer.build(name, num_particles=6)
    n_total = 1000
    pyro.set_rng_seed(7)
    loss = objective.loss(model, guide, x, num_data=n_total)
    pyro.set_rng_seed(7)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=6).log_w
    expected = -(n_total / len(x)) * bound(log_w).sum()
    assert loss == pytest.approx(expected.item(), rel=1e-6)


def test_loss_equals_loss_and_grads_under_same_seed(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.5)
    objective = infer.build("iwae", num_particles=4)
    pyro.set_rng_seed(11)
    a = objective.loss(model, guide, x, num_data=64)
    pyro.set_rng_seed(11)
    b = objective.loss_and_grads(model, guide, x, num_data=64)
    assert a == pytest.approx(b, rel=1e-6)
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


def test_num_data_smaller_than_batch_is_an_error(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="num_data"):
        infer.build("elbo").loss(model, ExactPosteriorGuide(model), x, num_data=3)


def test_exact_guide_makes_every_weight_log_px(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    lw = infer.log_importance_weights(model, exact_guide, x, num_particles=3, num_data=160)
    assert lw.log_w.shape == (3, len(x)) and lw.scale == 10.0
    assert torch.allclose(lw.log_w, model.exact_log_likelihood(x).expand(3, -1), atol=1e-4)
