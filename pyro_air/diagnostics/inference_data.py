"""Guide draws as an ``arviz.InferenceData``, so ArviZ's summaries and plots work on a VAE.

Groups (one chain; S draws; N datapoints; latent size L):

- ``posterior``: variable ``z`` with dims (chain, draw, datapoint, latent_dim), the draws
  z_ns ~ q(z | x_n) - or, with ``resample=True``, importance-resampled draws that approximate the
  true posterior p(z | x_n) (sampling-importance-resampling, see ``pyro_air.diagnostics.draws``:
  for each datapoint, S indices drawn with replacement with probabilities w_ns / sum_s w_ns).
- ``sample_stats``: ``log_weight`` (chain, draw, datapoint), the log importance weights
  log p(x_n, z_ns) - log q(z_ns | x_n) of the *guide* draws; ``khat`` (datapoint), the PSIS
  k-hat of each datapoint (``pyro_air.diagnostics.psis``); ``importance_ess`` (datapoint),
  (sum_s w_ns)^2 / sum_s w_ns^2; with ``resample=True`` also ``resampled_from`` (chain, draw,
  datapoint), the guide-draw index each posterior draw copies.
- ``observed_data``: ``x`` with dims (datapoint, x_dim).

Any model ``pyro_air.evaluate.log_likelihood`` accepts: every local latent site is a posterior
variable under its own name, dims (chain, draw, datapoint, NAME_dim_0, ...) for its per-datapoint
shape (the site ``z`` of a vector keeps ``latent_dim``); x may be a tuple of data tensors (variables
``x_0``, ``x_1``, ...).

Note on ``az.ess``: it measures autocorrelation along ``draw``. Guide draws are independent, so it
reports about S. Resampled draws are independent copies from a discrete distribution on the S
guide draws, so it also reports about S, which overstates what they know about p(z | x): the
information they carry is bounded by ``importance_ess``.
"""
from __future__ import annotations

import arviz as az
import numpy as np
import torch
import xarray as xr

from pyro_air.diagnostics.draws import importance_draws, importance_ess, resample_indices
from pyro_air.diagnostics.psis import (
    DEFAULT_CONSTANT_TOL,
    KHAT_BAD,
    KHAT_GOOD,
    khat_from_log_weights,
)


def to_inference_data(model, guide, x, num_samples: int = 1000, resample: bool = False,
                      datapoint_index=None, chunk_size: int | None = None, batch_size: int | None = None,
                      generator: torch.Generator | None = None,
                      constant_tol: float = DEFAULT_CONSTANT_TOL, model_kwargs: dict | None = None,
                      data_plate: str | None = None) -> az.InferenceData:
    """InferenceData of S guide (or importance-resampled) draws per datapoint; see the module docstring.

    ``datapoint_index`` labels the datapoint coordinate (e.g. the rows' indices in the test set);
    by default 0..N-1. ``generator`` seeds the resampling.
    """
    draws = importance_draws(model, guide, x, num_samples, chunk_size=chunk_size, batch_size=batch_size,
                             model_kwargs=model_kwargs, data_plate=data_plate)
    return draws_to_inference_data(draws, x, resample=resample, datapoint_index=datapoint_index,
                                   generator=generator, constant_tol=constant_tol)


def _site_dims(name: str, value: torch.Tensor) -> tuple:
    if name == "z" and value.dim() == 3:
        return ("latent_dim",)
    return tuple(f"{name}_dim_{i}" for i in range(value.dim() - 2))


def draws_to_inference_data(draws, x, resample: bool = False, datapoint_index=None,
                            generator: torch.Generator | None = None,
                            constant_tol: float = DEFAULT_CONSTANT_TOL) -> az.InferenceData:
    """The same conversion for draws already made with ``importance_draws``."""
    sites = draws.sites if draws.sites else ({"z": draws.z} if draws.z is not None else None)
    if not sites:
        raise ValueError("these draws hold no latent values (keep_z=False) or the guide has no local latent "
                         "site; call importance_draws(..., keep_z=True) on a guide with a site in the data plate")
    n, s = draws.log_w.shape
    if datapoint_index is None:
        datapoint_index = np.arange(n)
    datapoint_index = np.asarray(datapoint_index)
    if datapoint_index.shape != (n,):
        raise ValueError(f"datapoint_index must have {n} entries (one per row of x), got shape "
                         f"{datapoint_index.shape}")
    idx = None
    if resample:
        idx = resample_indices(draws.log_w, s, generator)
        sites = {name: torch.gather(v, 1, idx.reshape(n, s, *([1] * (v.dim() - 2))).expand_as(v))
                 for name, v in sites.items()}
    khat = khat_from_log_weights(draws.log_w, constant_tol)
    base = {"chain": [0], "draw": np.arange(s), "datapoint": datapoint_index}

    def chain_first(t: torch.Tensor) -> np.ndarray:  # [N, S, ...] -> [1, S, N, ...]
        return t.transpose(0, 1).unsqueeze(0).numpy()

    variables, coords = {}, dict(base)
    for name, value in sites.items():
        dims = _site_dims(name, value)
        coords.update({dim: np.arange(size) for dim, size in zip(dims, value.shape[2:])})
        variables[name] = (("chain", "draw", "datapoint") + dims, chain_first(value))
    posterior = xr.Dataset(variables, coords=coords)
    stats = {"log_weight": (("chain", "draw", "datapoint"), chain_first(draws.log_w)),
             "khat": (("datapoint",), khat.numpy()),
             "importance_ess": (("datapoint",), importance_ess(draws.log_w.double()).numpy())}
    if idx is not None:
        stats["resampled_from"] = (("chain", "draw", "datapoint"), chain_first(idx))
    sample_stats = xr.Dataset(stats, coords=base)
    data = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    observed_vars, observed_coords = {}, {"datapoint": datapoint_index}
    for i, tensor in enumerate(data):
        name = "x" if len(data) == 1 else f"x_{i}"
        dims = ("x_dim",) if name == "x" and tensor.dim() == 2 else tuple(f"{name}_dim_{j}" for j in range(tensor.dim() - 1))
        observed_coords.update({dim: np.arange(size) for dim, size in zip(dims, tensor.shape[1:])})
        observed_vars[name] = (("datapoint",) + dims, tensor.detach().cpu().numpy())
    observed = xr.Dataset(observed_vars, coords=observed_coords)
    attrs = {"inference_library": "pyro", "num_samples": s, "resampled": int(bool(resample)),
             "khat_good": KHAT_GOOD, "khat_bad": KHAT_BAD}
    for ds in (posterior, sample_stats, observed):
        ds.attrs.update(attrs)
    return az.InferenceData(posterior=posterior, sample_stats=sample_stats, observed_data=observed)
