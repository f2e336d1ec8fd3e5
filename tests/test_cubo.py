"""CUBO as a training objective for the guide (issue 15): closed forms, convergence, direction of
the expected gradient, over-dispersion, and a frozen MNIST decoder.

Setup and closed forms: tests/cubo_linear_gaussian.py. The bigger measurements (more seeds, K = 4,
the old estimator, MNIST at K = 8 / 64) are in experiments/objectives/cubo_training.py.
Limits stated, not hidden: at K = 4 only the default "dreg" form converges (the "standard" form
reaches the optimum in 1 of 3 seeds and collapses in 2, experiments/objectives/cubo_small_k.py);
the mean-field test runs at K = 16 because at K = 8 E_q[w^4] is infinite near its optimum and the
run wanders; on the frozen MNIST decoder only the default "dreg" form avoids collapse at K = 8 (the
"standard" form collapses there in 3 of 3 seeds, measured), so the MNIST test uses the default.
"""
import math
import warnings

import pyro
import pytest
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from pyro_air import data, evaluate, infer
from pyro_air.guides import GaussianEncoder
from pyro_air.infer import CUBO, cubo_bound, log_importance_weights
from pyro_air.infer.cubo import cubo_gradient_weights, leave_one_out_logmeanexp
from pyro_air.models import BernoulliVAE
from tests.cubo_linear_gaussian import (
    C_0,
    DELTA_0,
    DiagonalGuide,
    ScaledPosteriorGuide,
    chi2_optimal_diagonal_variance,
    closed_form_cubo,
    correlated_model,
    gaussian_log_moment,
    make_model_and_data,
    optimum_cubo,
)
from tests.linear_gaussian_guide import LinearGaussianGuide, grads


def cubo_gap(model, x, guide):
    """Closed-form sum_b CUBO_2(x_b) minus its optimum sum_b log p(x_b), in nats."""
    with torch.no_grad():
        return (closed_form_cubo(model, x, guide.delta, guide.log_c).sum() - optimum_cubo(model, x)).item()


def test_closed_form_cubo_matches_monte_carlo_and_the_general_gaussian_form():
    model, x = make_model_and_data()
    delta, log_c = torch.tensor(DELTA_0), torch.tensor(math.log(C_0))
    closed = closed_form_cubo(model, x, delta, log_c)
    cov = model.exact_posterior(x[:1]).covariance_matrix[0].detach()
    general = model.exact_log_likelihood(x).detach() + gaussian_log_moment(2.0, cov, delta, C_0 ** 2 * cov) / 2
    assert torch.allclose(closed, general, atol=1e-5)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        log_w = log_importance_weights(model, ScaledPosteriorGuide(model), x[:4], num_particles=200_000).log_w
    # E_q[w^4] is finite at c = 1.3 (c^2 > 3/4): 200k particles estimate CUBO_2 to ~0.01 nats, biased down
    assert torch.allclose(cubo_bound(log_w, 2.0), closed[:4], atol=0.02)
    assert (closed > model.exact_log_likelihood(x)).all()
    assert torch.allclose(closed_form_cubo(model, x, torch.zeros(2), torch.tensor(0.0)),
                          model.exact_log_likelihood(x), atol=1e-5)
    assert math.isinf(closed_form_cubo(model, x, delta, torch.tensor(math.log(0.7)))[0])  # c <= 1/sqrt(2)


def train(model, x, guide, num_particles, steps, estimator="dreg", seed=0, record=None):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    svi = SVI(model, guide, Adam({"lr": 0.02}), CUBO(n=2, num_particles=num_particles, estimator=estimator))
    history = []
    for step in range(steps):
        svi.step(x)
        history.append(record(guide) if record else None)
    return history


@pytest.mark.parametrize("estimator,num_particles", [("dreg", 8), ("dreg", 16), ("standard", 8)])
def test_linear_gaussian_cubo_training_converges(estimator, num_particles):
    """From delta = (0.4, -0.3), c = 1.3 (the issue's run): c stays far above 1/sqrt(2), delta -> 0,
    the closed-form CUBO_2 falls (to a third by step 200) and ends within 0.05 nats (summed over 16 datapoints) of its optimum.
    In this family the optimum is the exact posterior (c = 1), so c approaches 1 from above; the
    over-dispersion of chi^2 fits shows where the family cannot match (the mean-field test below)."""
    model, x = make_model_and_data()
    guide = ScaledPosteriorGuide(model)
    model_before = [p.detach().clone() for p in model.parameters()]
    start = cubo_gap(model, x, guide)
    record = lambda g: (g.c, g.delta.detach().clone(), cubo_gap(model, x, g))
    steps = 400 if estimator == "dreg" else 600  # the standard form is slower (the 600 steps)
    history = train(model, x, guide, num_particles, steps=steps, estimator=estimator, record=record)
    cs = torch.tensor([h[0] for h in history])
    gaps = torch.tensor([h[2] for h in history])
    assert start > 10.0
    assert cs.min() > 0.9  # never near the c^2 <= 1/2 region where CUBO_2 = +inf (the old estimator: c -> 0.001)
    assert gaps[199] < start / 3 and gaps[-100:].mean() < 0.05
    assert (cs[-100:] - 1).abs().max() < 0.05 and history[-1][1].abs().max() < 0.05
    assert all(torch.equal(a, b) for a, b in zip(model_before, model.parameters()))  # the model is not trained


def test_at_four_particles_the_default_estimator_still_converges():
    """Measured limit: at K = 4 the "dreg" form converges over 400 steps; the "standard" form at K = 4
    only moves halfway (experiments/objectives/RESULTS.md) - its variance grows fast as K falls."""
    model, x = make_model_and_data()
    guide = ScaledPosteriorGuide(model)
    history = train(model, x, guide, 4, steps=400, record=lambda g: (g.c, cubo_gap(model, x, g)))
    assert min(h[0] for h in history) > 0.9
    assert history[-1][1] < 0.2


@pytest.mark.parametrize("num_particles", [4, 8])
def test_a_rare_draw_cannot_poison_adam_at_small_k(num_particles):
    """Issue 34: with weight ratios capped at e^20, one early draw with a ratio of e^13 (K = 4, seed 1) put
    Adam's second moment at 1e7 and the guide stalled 0.19 nats above the optimum after 600 steps. With
    each step's scale bounded by K e^3 (cubo.RATIO_MARGIN) the default form is at the optimum within 150
    steps for seeds 0-2 at K = 4 and 8, and the second moment stays at the scale of typical steps
    (experiments/objectives/cubo_small_k.py: <= 1.6e2 after, up to 1e7 before)."""
    model, x = make_model_and_data()
    for seed in (0, 1, 2):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        guide = ScaledPosteriorGuide(model)
        optim = Adam({"lr": 0.02})
        svi = SVI(model, guide, optim, CUBO(n=2, num_particles=num_particles))
        for _ in range(150):
            svi.step(x)
        second = max(o.state[p]["exp_avg_sq"].max().item() for o in optim.optim_objs.values() for p in o.state)
        assert cubo_gap(model, x, guide) < 0.01 and abs(guide.c - 1) < 0.01, (seed, guide.c)
        assert second < 1e3, (seed, second)


def test_expected_gradient_points_along_the_closed_form_gradient():
    """Average of 300 independent gradient draws (the batch repeated 300 times: delta and c are shared,
    so one call sums 300 draws) against the closed-form d sum_b CUBO_2(x_b) / d(delta, log c)."""
    model, x = make_model_and_data()
    guide = ScaledPosteriorGuide(model)
    d, lc = guide.delta.detach().clone().requires_grad_(), guide.log_c.detach().clone().requires_grad_()
    closed_form_cubo(model, x, d, lc).sum().backward()
    truth = torch.cat([d.grad, lc.grad.view(1)])

    def mean_gradient(loss_fn):
        guide.zero_grad()
        pyro.set_rng_seed(1)
        loss_fn().backward()
        return torch.cat([guide.delta.grad, guide.log_c.grad.view(1)])

    xr = x.repeat(300, 1)
    cosine = lambda g: torch.nn.functional.cosine_similarity(g, truth, dim=0).item()
    for estimator in ("dreg", "standard"):
        loss = CUBO(2, num_particles=8, estimator=estimator).differentiable_loss
        assert cosine(mean_gradient(lambda loss=loss: loss(model, guide, xr))) > 0.9, estimator

    def old_surrogate():  # the gradient of the estimate (1), which the issue found collapses the guide
        w = log_importance_weights(model, guide, xr, num_particles=8, fixed_latent_densities=True)
        return cubo_bound(w.log_w - w.log_p_fixed + w.log_p_fixed.detach(), 2.0).sum()

    assert cosine(mean_gradient(old_surrogate)) < 0  # the test can tell the two apart


def test_mean_field_guide_over_disperses():
    """chi^2 fits cover the posterior: with a diagonal guide and a posterior of correlation -0.8, the
    closed-form optimum has variances ~1.37x the posterior's marginals (KL(q||p) would give 0.36x);
    CUBO training from the marginals ends near it. K = 16, see module docstring."""
    model = correlated_model()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        x = model.marginal().sample((16,))
    cov = model.exact_posterior(x[:1]).covariance_matrix[0].detach()
    marginal = cov.diagonal()
    optimum = chi2_optimal_diagonal_variance(model)
    assert (optimum > 1.3 * marginal).all()
    guide = DiagonalGuide(model, marginal.sqrt())
    history = train(model, x, guide, 16, steps=300, record=lambda g: g.log_sd.detach().exp() ** 2)
    trained = torch.stack(history[-100:]).mean(0)
    assert (trained > 1.15 * marginal).all()
    assert ((trained / optimum - 1).abs() < 0.15).all()
    gap = lambda var: gaussian_log_moment(2.0, cov, torch.zeros(2), torch.diag(var)).item() / 2
    assert gap(trained) < gap(marginal)


def test_leave_one_out_mean_is_exact_and_stable():
    a = torch.randn(6, 5, dtype=torch.float64) * 3
    direct = torch.stack([torch.logsumexp(torch.cat([a[:k], a[k + 1:]]), 0) for k in range(6)]) - math.log(5)
    assert torch.allclose(leave_one_out_logmeanexp(a), direct, atol=1e-10)
    extreme = torch.tensor([[1000.0], [0.0], [-5.0]])  # log-weights of MNIST scale differences
    loo = leave_one_out_logmeanexp(extreme)
    assert torch.allclose(loo[0], torch.logaddexp(torch.tensor(0.0), torch.tensor(-5.0)) - math.log(2))
    assert torch.allclose(loo[1:, 0], torch.tensor([1000.0, 1000.0]) - math.log(2), atol=1e-4)
    weights = cubo_gradient_weights(torch.tensor([[-400.0], [-405.0], [-430.0]]), 2.0)
    assert torch.isfinite(weights).all() and weights[0].item() == pytest.approx(3 * math.exp(3.0), rel=1e-4)
    assert weights[2] < 1e-10
    # beyond K e^3 (the bound on a step's scale) the batch shares one factor: ratios between weights are kept
    extreme = torch.tensor([[-400.0, -300.0], [-420.0, -301.0], [-430.0, -302.0]])
    capped, uncapped = cubo_gradient_weights(extreme), torch.exp(2 * extreme - leave_one_out_logmeanexp(2 * extreme))
    assert capped.max().log().item() == pytest.approx(math.log(3) + 3.0, abs=1e-4)
    assert torch.allclose(capped.log() - uncapped.log(), (capped.log() - uncapped.log())[0, 0].expand(3, 2), atol=1e-3)
    assert torch.allclose(cubo_gradient_weights(torch.full((4, 3), -250.0)), torch.ones(4, 3))  # q exact: a = 1


def test_cubo_trains_the_guide_only_with_the_leave_one_out_standard_estimator(linear_gaussian):
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model, loc_shift=0.3, scale_factor=1.2)
    guide_grad, model_grad = grads(CUBO(n=2, num_particles=6, estimator="standard"), model, guide, x, seed=4)
    assert torch.equal(model_grad, torch.zeros_like(model_grad))
    # guide gradient = sum_b (1/K) sum_k a_kb d log w_kb, a_kb = w_kb^2 / mean_{j != k} w_jb^2 (cubo.py Eq. 2)
    for p in guide.parameters():
        p.grad = None
    pyro.set_rng_seed(4)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=6).log_w
    a = (2 * log_w.detach()).exp()
    loo_mean = (a.sum(0, keepdim=True) - a) / 5
    ((a / loo_mean) * log_w).mean(0).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in guide.parameters()])
    assert torch.allclose(guide_grad, expected, rtol=1e-3, atol=1e-4)
    assert guide_grad.abs().max() > 0.1


@pytest.mark.parametrize("cfg,match", [
    ({"num_particles": 1}, "num_particles >= 2"),
    ({"num_particles": -1}, "num_particles"),
    ({"estimator": "stl"}, "unknown CUBO gradient estimator"),
    ({"n": 1}, "n > 1"),
    ({"n": 0.5}, "n > 1"),
    ({"n": -2}, "n > 1"),
])
def test_bad_cubo_configuration_is_refused(cfg, match):
    with pytest.raises(ValueError, match=match):
        CUBO(**cfg)


@pytest.mark.filterwarnings("ignore:.*requires_grad=False")
def test_frozen_mnist_decoder_guide_does_not_collapse():
    """A 784-64-64-8 VAE trained briefly on 200 images, decoder frozen, then the encoder trained with
    CUBO (K = 8): its mean scale does not fall below half its start (the old estimator: 0.73 -> 1e-4
    within 600 steps, experiments/objectives/RESULTS.md),
    and the CUBO-5000 upper-bound estimate stays above the IWAE-5000 lower bound of the same guide.
    (On this saturating decoder the true CUBO_2 is +inf whenever a scale is <= 1/sqrt(2); the estimate
    is finite, so this is a sanity check of the sandwich, not of tightness - RESULTS.md.)"""
    pyro.set_rng_seed(0)
    x = data.load("mnist", "train", train_size=200)
    model, guide = BernoulliVAE(784, 8, (64, 64)), GaussianEncoder(784, 8, (64, 64))
    svi = SVI(model, guide, Adam({"lr": 1e-3}), infer.build("elbo"))
    for _ in range(20):
        for batch in torch.randperm(200).split(50):
            svi.step(x[batch], num_data=200)
    for p in model.parameters():
        p.requires_grad_(False)
    mean_scale = lambda: guide.loc_scale(x)[1].mean().item()
    with torch.no_grad():
        before = mean_scale()
    pyro.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 1e-3}), CUBO(n=2, num_particles=8))
    scales = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(150):
            svi.step(x[torch.randint(0, 200, (50,))], num_data=200)
            with torch.no_grad():
                scales.append(mean_scale())
    assert min(scales) > 0.5 * before
    images = x[:20]
    lower = evaluate.log_likelihood(model, guide, images, num_samples=5000, seed=1)
    upper = evaluate.upper_bound(model, guide, images, num_samples=5000, seed=1)
    assert upper.mean() > lower.mean() and (upper > lower).float().mean() >= 0.9
