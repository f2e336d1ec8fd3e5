"""Property-based tests (hypothesis) of the objectives on random linear-Gaussian models.

For any model and any Gaussian guide q (here a shifted and rescaled exact posterior, so q != p(z|x)):
    ELBO = E[log w] <= IWAE-k = E[log (1/k) sum_k w_k] <= log p(x)
(Burda et al. 2016, Theorem 1; AIR paper Eq. 20), and for the same draws the IWAE-k estimate is
never below the ELBO estimate (log-mean-exp >= mean). Every loss and gradient is finite.
"""
import pyro
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer.log_weights import log_importance_weights
from pyro_air.models import LinearGaussianModel

REPLICATES = 400  # independent IWAE-k estimates per datapoint
Z_SCORE = 4.5     # MC tolerance in standard errors (a family of ~25 examples x 2 inequalities)

cases = st.fixed_dictionaries({
    "x_dim": st.integers(1, 6), "z_dim": st.integers(1, 3), "noise_scale": st.floats(0.2, 2.0),
    "scale_factor": st.floats(0.8, 1.6), "loc_shift": st.floats(-0.7, 0.7), "k": st.integers(2, 8),
    "seed": st.integers(0, 2 ** 16),
})


def _setup(case):
    model = LinearGaussianModel(case["x_dim"], case["z_dim"], case["noise_scale"], seed=case["seed"])
    guide = ExactPosteriorGuide(model, scale_factor=case["scale_factor"], loc_shift=case["loc_shift"])
    pyro.set_rng_seed(case["seed"])
    x = model.marginal().sample((3,)).detach()
    return model, guide, x


def _mean_se(t):
    return t.mean(0), t.std(0) / t.shape[0] ** 0.5


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_elbo_below_iwae_below_log_likelihood(case):
    model, guide, x = _setup(case)
    k, b = case["k"], len(x)
    with torch.no_grad():
        log_w = log_importance_weights(model, guide, x, num_particles=k * REPLICATES).log_w  # [k * R, B]
    grouped = log_w.reshape(REPLICATES, k, b).transpose(0, 1).reshape(k, REPLICATES * b)  # [k, R * B]
    elbo = infer.MonteCarloELBO(num_particles=k).per_datapoint_bound(grouped).reshape(REPLICATES, b)
    iwae = infer.IWAE_ELBO(num_particles=k).per_datapoint_bound(grouped).reshape(REPLICATES, b)
    assert torch.isfinite(log_w).all()
    assert (iwae >= elbo - 1e-5).all()  # same draws: log-mean-exp >= mean
    log_px = model.exact_log_likelihood(x).detach()
    gap_mean, gap_se = _mean_se(iwae - elbo)  # E[IWAE-k] - E[ELBO] >= 0
    assert (gap_mean >= -Z_SCORE * gap_se - 1e-6).all()
    iwae_mean, iwae_se = _mean_se(iwae)  # E[IWAE-k] <= log p(x)
    assert (iwae_mean <= log_px + Z_SCORE * iwae_se + 1e-4).all(), (iwae_mean, log_px, iwae_se)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(cases, st.sampled_from(["elbo", "iwae"]))
def test_losses_and_gradients_are_finite(case, name):
    model, guide, x = _setup(case)
    objective = infer.build(name, num_particles=case["k"])
    loss = objective.differentiable_loss(model, guide, x, num_data=10 * len(x))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    pyro.set_rng_seed(case["seed"])
    assert torch.isfinite(torch.tensor(objective.loss(model, guide, x)))
