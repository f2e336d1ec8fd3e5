"""Every objective on the linear-Gaussian model: the subsampling scale, loss and gradients agree, the
bounds' order (ELBO <= IWAE-k <= log p(x) <= CUBO_2), and an exact guide makes each exact."""
import math

import pyro
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import cubo_bound, iwae_bound, renyi_bound

# (registry name, config, per-datapoint value that the loss is -(N/B) times the batch sum of)
OBJECTIVES = [
    ("elbo", {}, lambda lw: lw.mean(0)),
    ("iwae", {"estimator": "standard"}, iwae_bound),
    ("iwae", {"estimator": "dreg"}, iwae_bound),
    ("iwae", {"estimator": "stl"}, iwae_bound),
    ("renyi", {"alpha": 0.5}, lambda lw: renyi_bound(lw, 0.5)),
    ("renyi", {"alpha": -2.0}, lambda lw: renyi_bound(lw, -2.0)),
    ("renyi", {"alpha": float("-inf")}, lambda lw: lw.max(0).values),
    ("cubo", {"n": 2}, lambda lw: -cubo_bound(lw, 2.0)),  # CUBO's loss is +(N/B) sum CUBO
]
IDS = ["elbo", "iwae", "iwae-dreg", "iwae-stl", "renyi0.5", "renyi-2", "vr-max", "cubo2"]


def poor_guide(model):
    return ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)


@pytest.mark.parametrize("name,cfg,bound", OBJECTIVES, ids=IDS)
def test_subsampling_scale_is_outside_the_logsumexp(linear_gaussian, name, cfg, bound):
    model, x = linear_gaussian
    guide, objective, n_total = poor_guide(model), infer.build(name, num_particles=5, **cfg), 1000
    pyro.set_rng_seed(3)
    loss = objective.loss(model, guide, x, num_data=n_total)
    pyro.set_rng_seed(3)
    differentiable = objective.differentiable_loss(model, guide, x, num_data=n_total).item()
    pyro.set_rng_seed(3)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=5).log_w
    expected = -(n_total / len(x)) * bound(log_w).sum().item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert differentiable == pytest.approx(expected, rel=1e-5)
    # the scale is not inside the exponent: B/N times the loss does not depend on N
    pyro.set_rng_seed(3)
    assert objective.loss(model, guide, x, num_data=50) / 50 == pytest.approx(loss / n_total, rel=1e-5)


@pytest.mark.parametrize("name,cfg,bound", OBJECTIVES, ids=IDS)
def test_loss_equals_loss_and_grads_under_the_same_seed(linear_gaussian, name, cfg, bound):
    model, x = linear_gaussian
    guide, objective = poor_guide(model), infer.build(name, num_particles=4, **cfg)
    pyro.set_rng_seed(11)
    a = objective.loss(model, guide, x, num_data=64)
    pyro.set_rng_seed(11)
    b = objective.loss_and_grads(model, guide, x, num_data=64)
    assert a == pytest.approx(b, rel=1e-5)


def test_elbo_iwae_exact_cubo_ordering(linear_gaussian):
    """ELBO <= IWAE-k <= log p(x) <= CUBO_2, in expectation (review 6.1; Burda et al. Thm 1)."""
    model, x = linear_gaussian
    guide = poor_guide(model)  # wider than the posterior: E_q[w^4] is finite, CUBO is well estimated
    exact = model.exact_log_likelihood(x).detach()
    reps, k = 40, 1000
    torch.manual_seed(0)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=reps * k).log_w.detach()
    log_w = log_w.reshape(reps, k, len(x))

    def mean_se(per_rep):  # per_rep: [reps, B] -> mean and s.e. over replicates of the batch mean
        m = per_rep.mean(1)
        return m.mean().item(), m.std().item() / math.sqrt(reps)

    elbo, _ = mean_se(torch.stack([lw.mean(0) for lw in log_w]))
    iwae, iwae_se = mean_se(torch.stack([iwae_bound(lw[:10]) for lw in log_w]))
    cubo, cubo_se = mean_se(torch.stack([cubo_bound(lw, 2.0) for lw in log_w]))
    truth = exact.mean().item()
    assert elbo < iwae - 3 * iwae_se
    assert iwae < truth
    assert truth < cubo + 3 * cubo_se
    assert cubo - truth < 1.0  # and not vacuous: the upper bound is within a nat here


def test_exact_guide_makes_every_bound_exact(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x).sum().item()
    for name, cfg, _ in OBJECTIVES:
        loss = infer.build(name, num_particles=3, **cfg).loss(model, exact_guide, x)
        expected = exact if name == "cubo" else -exact
        assert loss == pytest.approx(expected, rel=1e-5), name
