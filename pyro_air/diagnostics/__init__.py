"""Posterior diagnostics: per-datapoint PSIS k-hat, ArviZ InferenceData, seaborn plots.

    khat = psis_khat(model, guide, x, num_samples=1000)            # Tensor[N]
    idata = to_inference_data(model, guide, x, num_samples=1000)    # arviz.InferenceData

Plots live in :mod:`pyro_air.diagnostics.plots` (imported on demand: it pulls in matplotlib).
"""
from pyro_air.diagnostics.draws import (
    ImportanceDraws,
    importance_draws,
    importance_ess,
    resample,
)
from pyro_air.diagnostics.inference_data import (
    draws_to_inference_data,
    to_inference_data,
)
from pyro_air.diagnostics.psis import (
    CONSTANT_WEIGHTS_KHAT,
    KHAT_BAD,
    KHAT_GOOD,
    format_khat_summary,
    khat_from_log_weights,
    khat_summary,
    log_weights_matrix,
    psis_khat,
)

__all__ = [
    "CONSTANT_WEIGHTS_KHAT",
    "KHAT_BAD",
    "KHAT_GOOD",
    "ImportanceDraws",
    "draws_to_inference_data",
    "format_khat_summary",
    "importance_draws",
    "importance_ess",
    "khat_from_log_weights",
    "khat_summary",
    "log_weights_matrix",
    "psis_khat",
    "resample",
    "to_inference_data",
]
