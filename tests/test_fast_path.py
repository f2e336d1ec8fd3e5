"""pyro_air.train's fast path (one torch Adam over differentiable_loss, Pyro validation and the
per-call input checks off) gives the same numbers as the slow path, pyro.infer.SVI."""
import copy

import pyro
import pyro.optim
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.train import parameters_of
from tests.conftest import binary_batch


def _pair():
    torch.manual_seed(0)
    return models.build("bernoulli-vae", z_dim=3, hidden=(20,)), guides.build("gaussian", z_dim=3, hidden=(20,))


@pytest.mark.parametrize("objective", [infer.ELBO(num_particles=2), infer.IWAE_ELBO(num_particles=5)])
def test_one_fast_step_equals_one_svi_step(objective):
    """Same init, batch and seed: identical loss, gradients and Adam-updated parameters."""
    x = binary_batch(10)
    model, guide = _pair()
    fast_model, fast_guide = copy.deepcopy(model), copy.deepcopy(guide)

    slow_grads = {}  # SVI zeroes .grad after its step: catch the gradients as backward makes them
    for i, p in enumerate(parameters_of(model, guide)):
        p.register_hook(lambda g, i=i: slow_grads.__setitem__(i, g.clone()))
    pyro.set_rng_seed(11)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), objective)
    slow_loss = svi.step(x, num_data=40)  # validation on (Pyro's default): inputs checked every call

    params = parameters_of(fast_model, fast_guide)
    optimizer = torch.optim.Adam(params, lr=1e-2)
    pyro.set_rng_seed(11)
    with pyro.validation_enabled(False):  # what train.fit's hot loop does
        optimizer.zero_grad(set_to_none=True)
        fast_loss = objective.differentiable_loss(fast_model, fast_guide, x, num_data=40)
        fast_loss.backward()
        fast_grads = [p.grad.clone() for p in params]
        optimizer.step()

    assert fast_loss.item() == slow_loss
    slow_params = parameters_of(model, guide)
    assert len(slow_grads) == len(fast_grads)
    assert all(torch.equal(fast_grads[i], slow_grads[i]) for i in range(len(fast_grads)))
    assert all(torch.equal(a, b) for a, b in zip(params, slow_params, strict=True))


def test_input_checks_follow_pyro_validation():
    """Validation on: a non-binary batch is refused per call; off (the hot loop): not checked."""
    model, guide = _pair()
    grey = torch.full((4, 784), 0.5)
    with pytest.raises(ValueError, match="binary x"):
        infer.ELBO().loss(model, guide, grey)
    with pyro.validation_enabled(False):
        assert torch.isfinite(torch.tensor(infer.ELBO().loss(model, guide, grey)))


@pytest.mark.parametrize("estimate", [log_likelihood, elbo])
def test_evaluation_checks_its_data_once_up_front(estimate):
    """Evaluation turns per-call checks off, so it checks all of x before the first chunk."""
    model, guide = _pair()
    x = binary_batch(6)
    x[5, 0] = 0.5
    with pytest.raises(ValueError, match="binary x in \\{0, 1\\}"):
        estimate(model, guide, x, num_samples=3, batch_size=2)
    with pytest.raises(ValueError, match="shape \\[B, 784\\]"):
        estimate(model, guide, torch.zeros(3, 10), num_samples=3)
