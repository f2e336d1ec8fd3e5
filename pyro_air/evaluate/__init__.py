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

__all__ = [
    "Estimate",
    "LocalGaussianGuide",
    "active_units",
    "aggregate_log_det_cov",
    "amortization_gap",
    "elbo",
    "fit_local_gaussians",
    "format_table",
    "iw_svi",
    "latent_metrics",
    "latent_mmd",
    "log_likelihood",
    "mean_stderr",
    "mutual_information",
    "summarize",
    "upper_bound",
]
