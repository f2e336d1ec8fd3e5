"""Evaluation: per-datapoint log-likelihood estimates, bounds and gaps (Tensor[N] each)."""
from pyro_air.evaluate.ais import (
    AISDiagnostics,
    BDMCResult,
    ais,
    bdmc,
    beta_schedule,
    reverse_ais,
    simulate,
)
from pyro_air.evaluate.gap_decomposition import (
    format_gap_table,
    gap_decomposition,
    optimal_local_elbo,
    plot_gaps,
    summarize_gaps,
)
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
    "AISDiagnostics",
    "BDMCResult",
    "Estimate",
    "LocalGaussianGuide",
    "active_units",
    "aggregate_log_det_cov",
    "ais",
    "amortization_gap",
    "bdmc",
    "beta_schedule",
    "elbo",
    "fit_local_gaussians",
    "format_gap_table",
    "format_table",
    "gap_decomposition",
    "iw_svi",
    "latent_metrics",
    "latent_mmd",
    "log_likelihood",
    "mean_stderr",
    "mutual_information",
    "optimal_local_elbo",
    "plot_gaps",
    "reverse_ais",
    "simulate",
    "summarize",
    "summarize_gaps",
    "upper_bound",
]
