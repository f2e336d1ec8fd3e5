"""Guide draws with their importance weights, and importance resampling (pyro_air/diagnostics/draws.py),
on the linear-Gaussian model, whose posterior is known exactly."""
import math

import pytest
import torch

from pyro_air.diagnostics.draws import importance_draws, importance_ess, resample, resample_indices
from pyro_air.guides import ExactPosteriorGuide


def _broad(model):
    return ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)


def test_every_weight_is_log_p_of_x_and_its_draw_minus_log_q(linear_gaussian):
    """log w_ns = log p(x_n, z_ns) - log q(z_ns | x_n) for the draws returned, whatever the chunking."""
    model, x = linear_gaussian
    guide = _broad(model)
    torch.manual_seed(0)
    draws = importance_draws(model, guide, x, num_samples=20, chunk_size=7, batch_size=5)
    assert draws.z.shape == (16, 20, 2) and draws.log_w.shape == (16, 20) and draws.num_samples == 20
    assert set(draws.sites) == {"z"} and torch.equal(draws.sites["z"], draws.z)
    z = draws.z.transpose(0, 1)  # [S, N, 2]
    with torch.no_grad():
        expected = model.log_joint(x, z) - guide.posterior(x).log_prob(z)
    torch.testing.assert_close(draws.log_w, expected.T, atol=1e-4, rtol=1e-5)


def test_the_exact_posterior_makes_every_weight_log_px(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    draws = importance_draws(model, exact_guide, x, num_samples=9, chunk_size=4)
    exact = model.exact_log_likelihood(x).detach()
    torch.testing.assert_close(draws.log_w, exact[:, None].expand(-1, 9), atol=1e-4, rtol=0)


def test_kept_dimensions_and_no_draws_keep_the_same_weights(linear_gaussian):
    model, x = linear_gaussian
    guide = _broad(model)
    runs = {}
    for key, options in {"all": {}, "dim 1": {"keep_dims": (1,)}, "none": {"keep_z": False}}.items():
        torch.manual_seed(4)
        runs[key] = importance_draws(model, guide, x, num_samples=6, **options)
    assert torch.equal(runs["dim 1"].z, runs["all"].z[..., [1]]) and runs["dim 1"].dims == (1,)
    assert runs["none"].z is None and runs["none"].sites is None
    assert torch.equal(runs["none"].log_w, runs["all"].log_w) and torch.equal(runs["dim 1"].log_w, runs["all"].log_w)


def test_rows_are_the_same_samples_of_some_datapoints(linear_gaussian):
    model, x = linear_gaussian
    draws = importance_draws(model, _broad(model), x, num_samples=5)
    some = draws.rows([3, 0])
    assert torch.equal(some.log_w, draws.log_w[[3, 0]]) and torch.equal(some.z, draws.z[[3, 0]])
    assert torch.equal(some.sites["z"], draws.sites["z"][[3, 0]])


def test_importance_ess_of_known_weights():
    log_w = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -1e4, -1e4, -1e4], [0.0, 0.0, math.log(2.0), -math.inf]])
    torch.testing.assert_close(importance_ess(log_w), torch.tensor([4.0, 1.0, 16.0 / 6.0]))
    shifted = importance_ess(log_w[:, :3] + 800.0)  # invariant to a common factor, stable for large log weights
    torch.testing.assert_close(shifted, importance_ess(log_w[:, :3]), rtol=1e-4, atol=0)


def test_resampled_indices_follow_the_normalized_weights():
    probs = torch.tensor([[0.1, 0.2, 0.7, 0.0], [0.25, 0.25, 0.25, 0.25]])
    gen = torch.Generator().manual_seed(0)
    idx = resample_indices(probs.log(), 40000, generator=gen)
    assert idx.shape == (2, 40000)
    freq = torch.stack([torch.bincount(row, minlength=4) for row in idx]).double() / 40000
    assert (freq[0, 3] == 0).item()  # a zero weight is never drawn
    assert torch.allclose(freq, probs.double(), atol=0.01)


def test_resampling_recovers_the_exact_posterior_mean(linear_gaussian):
    """Sampling-importance-resampling: resampled draws are distributed as p(z | x) as S grows."""
    model, x = linear_gaussian
    x = x[:4]
    torch.manual_seed(1)
    draws = importance_draws(model, _broad(model), x, num_samples=4000)
    z, idx = resample(draws, generator=torch.Generator().manual_seed(2))
    assert z.shape == (4, 4000, 2) and idx.shape == (4, 4000)
    assert torch.equal(z[0, :5], draws.z[0, idx[0, :5]])
    exact = model.exact_posterior(x)
    assert torch.allclose(z.mean(1), exact.loc.detach(), atol=0.05)
    assert torch.allclose(z[0].T.cov(), exact.covariance_matrix[0].detach(), atol=0.03)


def test_bad_requests_are_one_line_errors(linear_gaussian):
    model, x = linear_gaussian
    draws = importance_draws(model, _broad(model), x, num_samples=3, keep_z=False)
    with pytest.raises(ValueError, match=r"^these draws were made with keep_z=False; call importance_draws\(\.\.\., "
                                         r"keep_z=True\)$"):
        resample(draws)
    with pytest.raises(ValueError, match="num_draws must be an integer >= 1, got 0"):
        resample_indices(draws.log_w, 0)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        importance_draws(model, _broad(model), x, num_samples=0)


def test_a_guide_that_cannot_broadcast_fills_every_column_with_its_own_weight():
    """A guide written for 2-D x only runs one particle at a time; every one of the S columns must
    still hold log p(x, z_s) - log q(z_s | x) of the draw kept in that column (a column skipped
    by the particle loop would hold whatever memory torch.empty returned)."""
    import pyro
    from pyro import poutine

    from tests.outside_models import no_broadcast

    case = no_broadcast()
    (x,) = case.data(6)
    pyro.clear_param_store()
    torch.manual_seed(0)
    draws = importance_draws(case.model, case.guide, x, num_samples=11, chunk_size=4)
    assert torch.isfinite(draws.log_w).all() and set(draws.sites) == {"z1", "z2"}

    def per_datapoint_log_prob(fn, values):
        trace = poutine.trace(poutine.condition(fn, data=values)).get_trace(x)
        trace.compute_log_prob()
        return sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample")

    with torch.no_grad():
        for s in range(11):
            values = {name: draws.sites[name][:, s] for name in ("z1", "z2")}
            expected = per_datapoint_log_prob(case.model, values) - per_datapoint_log_prob(case.guide, values)
            torch.testing.assert_close(draws.log_w[:, s], expected, atol=1e-4, rtol=1e-5)
