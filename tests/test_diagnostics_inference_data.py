"""InferenceData from guide draws: groups, dims, coords; ArviZ functions; importance resampling."""
import math

import arviz as az
import numpy as np
import pytest
import torch

from pyro_air.diagnostics import to_inference_data
from pyro_air.guides import ExactPosteriorGuide


def test_groups_dims_and_coords(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.8)
    idata = to_inference_data(model, guide, x, num_samples=200, datapoint_index=np.arange(100, 116))
    assert {"posterior", "sample_stats", "observed_data"} <= set(idata.groups())
    z = idata.posterior["z"]
    assert z.dims == ("chain", "draw", "datapoint", "latent_dim")
    assert z.shape == (1, 200, 16, 2)
    np.testing.assert_array_equal(z.coords["datapoint"].values, np.arange(100, 116))
    np.testing.assert_array_equal(z.coords["latent_dim"].values, [0, 1])
    stats = idata.sample_stats
    assert stats["log_weight"].dims == ("chain", "draw", "datapoint")
    assert stats["khat"].dims == ("datapoint",)
    assert stats["importance_ess"].dims == ("datapoint",)
    assert np.all(stats["importance_ess"].values <= 200 + 1e-6)
    assert np.isfinite(stats["khat"].values).all()
    np.testing.assert_array_equal(idata.observed_data["x"].values, x.numpy())
    assert idata.posterior.attrs["resampled"] == 0


def test_log_weights_match_the_draws(linear_gaussian):
    """log_weight[s, n] = log p(x_n, z_sn) - log q(z_sn | x_n), recomputed from the stored draws."""
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.7)
    idata = to_inference_data(model, guide, x, num_samples=30)
    z = torch.from_numpy(idata.posterior["z"].values[0])            # [S, N, L]
    log_w = torch.from_numpy(idata.sample_stats["log_weight"].values[0])
    with torch.no_grad():
        log_joint = model.prior(16, x).log_prob(z) + model.likelihood(z).log_prob(x)
        expected = log_joint - guide.posterior(x).log_prob(z)
    torch.testing.assert_close(log_w, expected, atol=1e-4, rtol=1e-5)


def test_arviz_summary_and_ess_run(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    idata = to_inference_data(model, exact_guide, x[:3], num_samples=100)
    summary = az.summary(idata, var_names=["z"])
    assert len(summary) == 3 * 2
    assert np.isfinite(summary["mean"].values).all()
    ess = az.ess(idata)["z"]
    assert ess.dims == ("datapoint", "latent_dim")
    assert (ess.values > 30).all()  # independent draws: close to S, far above a sticky chain's


def test_resampled_draws_match_the_exact_posterior_mean(linear_gaussian):
    """SIR from a shifted, wider guide: the resampled mean is the true posterior mean within MC error,
    while the guide's own draws are off by the shift."""
    model, x = linear_gaussian
    shift = 0.5
    guide = ExactPosteriorGuide(model, scale_factor=1.5, loc_shift=shift)
    num_samples = 4000
    idata = to_inference_data(model, guide, x, num_samples=num_samples, resample=True,
                              generator=torch.Generator().manual_seed(0))
    assert idata.posterior.attrs["resampled"] == 1
    exact = model.exact_posterior(x)
    mean, sd = exact.loc.detach().numpy(), exact.variance.sqrt().detach().numpy()   # [N, L]
    resampled_mean = idata.posterior["z"].mean(("chain", "draw")).values
    ess = idata.sample_stats["importance_ess"].values[:, None]
    # MC error of an SIR mean: importance error sd/sqrt(ESS) plus multinomial resampling error sd/sqrt(S)
    se = sd * np.sqrt(1 / ess + 1 / num_samples)
    z_scores = (resampled_mean - mean) / se
    assert np.abs(z_scores).max() < 4.5
    assert abs(z_scores.mean()) < 4 / math.sqrt(z_scores.size)
    guide_mean = to_inference_data(model, guide, x, num_samples=500).posterior["z"].mean(("chain", "draw")).values
    assert np.abs(guide_mean - mean - shift).max() < 0.1  # the guide itself is biased by the shift
    frm = idata.sample_stats["resampled_from"].values
    assert frm.min() >= 0 and frm.max() < num_samples


def test_bad_datapoint_index_is_a_clear_error(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="datapoint_index must have 16 entries"):
        to_inference_data(model, exact_guide, x, num_samples=30, datapoint_index=[1, 2])
