"""Evaluation: per-datapoint log-likelihood estimates, bounds and gaps (Tensor[N] each)."""
from pyro_air.evaluate.gaps import amortization_gap
from pyro_air.evaluate.iw_svi import LocalGaussianGuide, fit_local_gaussians, iw_svi
from pyro_air.evaluate.latent_metrics import (
    active_units,
    aggregate_log_det_cov,
    latent_metrics,
    latent_mmd,
    mutual_information,
)
from pyro_air.evaluate.log_likelihood import elbo, log_likelihood
from pyro_air.evaluate.summary import Estimate, format_table, mean_stderr, summarize
from pyro_air.evaluate.upper_bound import upper_bound

__all__ = ["log_likelihood", "elbo", "summarize", "mean_stderr", "format_table", "Estimate",
           "iw_svi", "fit_local_gaussians", "LocalGaussianGuide", "amortization_gap", "upper_bound",
           "latent_metrics", "latent_mmd", "aggregate_log_det_cov", "active_units", "mutual_information"]
