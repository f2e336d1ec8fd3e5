"""Pareto-smoothed importance sampling (PSIS) k-hat, one per datapoint.

For each x_n the S log weights log w_ns = log p(x_n, z_ns) - log q(z_ns | x_n), z_ns ~ q(z | x_n),
go through ArviZ's PSIS (``arviz.psislw``): a generalized Pareto distribution is fitted to the
largest min(0.2 S, 3 sqrt(S)) weights and its shape k-hat estimates how heavy the tail of
w = p(z | x) p(x) / q(z | x) is (Vehtari et al., "Pareto smoothed importance sampling", 2024;
Yao et al., "Yes, but did it work?", ICML 2018, section 2.1). Thresholds (Yao et al. 2018):

    k < 0.5        good:  the importance ratios have finite variance; q(z|x) is a good proposal
    0.5 <= k < 0.7 usable: finite mean, infinite variance; PSIS estimates still converge usefully
    k >= 0.7       bad:   q(z|x) misses mass of p(z|x); estimates from it are unreliable for this x

Pyro's ``pyro.infer.importance.psis_diagnostic`` fits one k over a whole batch (one joint weight
per particle); for an amortized guide the question is per datapoint, so this is per datapoint.

Constant weights. When q(z|x) = p(z|x) exactly, every w_ns equals p(x_n): the weights have no tail
at all and ArviZ returns k = inf (no draw exceeds the tail cut-off). Bounded weights mean k <= 0
(the generalized Pareto shape of a bounded distribution is negative), and a point mass is the best
case there is, so a row whose log weights span less than ``constant_tol`` nats (their ratios lie
within a factor exp(constant_tol) of each other: float rounding, not a tail) is reported as
``CONSTANT_WEIGHTS_KHAT`` = 0.0, a perfect fit, instead of inf or NaN.
"""
from __future__ import annotations

import math
import warnings

import arviz as az
import numpy as np
import torch

from pyro_air.diagnostics.draws import importance_draws

KHAT_GOOD = 0.5
KHAT_BAD = 0.7
CONSTANT_WEIGHTS_KHAT = 0.0
DEFAULT_CONSTANT_TOL = 1e-3
KHAT_BINS = (("good (k < 0.5)", -math.inf, KHAT_GOOD), ("ok (0.5 <= k < 0.7)", KHAT_GOOD, KHAT_BAD),
             ("bad (k >= 0.7)", KHAT_BAD, math.inf))


def psis_tail_length(num_samples: int) -> int:
    """Number of draws ArviZ's PSIS fits the Pareto tail to: ceil(min(0.2 S, 3 sqrt(S)))."""
    return int(math.ceil(min(0.2 * num_samples, 3 * math.sqrt(num_samples))))


# ArviZ needs more than 4 tail draws to fit the generalized Pareto distribution.
MIN_PSIS_SAMPLES = next(s for s in range(1, 1000) if psis_tail_length(s) > 4)


def _check_num_samples(num_samples: int) -> None:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < MIN_PSIS_SAMPLES:
        raise ValueError(
            f"num_samples must be an integer >= {MIN_PSIS_SAMPLES} for a Pareto tail fit, got {num_samples!r}; "
            "use a few hundred or more for a reliable k-hat"
        )


def log_weights_matrix(model, guide, x, num_samples: int = 1000, chunk_size: int | None = None,
                       batch_size: int | None = None, progress: bool = False, model_kwargs: dict | None = None,
                       data_plate: str | None = None) -> torch.Tensor:
    """log w[n, s] = log p(x_n, z_ns) - log q(z_ns | x_n), z_ns ~ q(z | x_n); Tensor[N, S], chunked.
    Any model ``pyro_air.evaluate.log_likelihood`` accepts (x a tensor or a tuple of data tensors)."""
    return importance_draws(model, guide, x, num_samples, chunk_size=chunk_size, batch_size=batch_size,
                            keep_z=False, progress=progress, model_kwargs=model_kwargs, data_plate=data_plate).log_w


def khat_from_log_weights(log_w: torch.Tensor, constant_tol: float = DEFAULT_CONSTANT_TOL) -> torch.Tensor:
    """Per-row PSIS k-hat of [N, S] log weights through ``arviz.psislw``; constant rows give 0.0."""
    log_w = torch.as_tensor(log_w)
    if log_w.dim() != 2:
        raise ValueError(f"log_w must have shape [N, S] (datapoints x samples), got {list(log_w.shape)}")
    _check_num_samples(log_w.shape[1])
    if not torch.isfinite(log_w).all():
        raise ValueError("log_w has NaN or inf entries; the guide or model produced invalid densities")
    if constant_tol < 0:
        raise ValueError(f"constant_tol must be >= 0, got {constant_tol!r}")
    lw = log_w.detach().cpu().double().numpy().copy()  # psislw works in place on its input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on k > 0.7; reporting k is our job here
        _, khat = az.psislw(lw)
    khat = torch.as_tensor(np.asarray(khat, dtype=np.float64)).float()
    spread = log_w.max(dim=1).values - log_w.min(dim=1).values
    return torch.where(spread.cpu() <= constant_tol, torch.full_like(khat, CONSTANT_WEIGHTS_KHAT), khat)


def psis_khat(model, guide, x, num_samples: int = 1000, chunk_size: int | None = None,
              batch_size: int | None = None, constant_tol: float = DEFAULT_CONSTANT_TOL,
              progress: bool = False, model_kwargs: dict | None = None, data_plate: str | None = None) -> torch.Tensor:
    """PSIS k-hat of the guide q(z|x) as a proposal for p(z|x), per datapoint: Tensor[N] (discrete
    local latents accepted; global latents: one draw per batch, as in ``log_likelihood``)."""
    _check_num_samples(num_samples)
    log_w = log_weights_matrix(model, guide, x, num_samples, chunk_size, batch_size, progress, model_kwargs,
                               data_plate)
    return khat_from_log_weights(log_w, constant_tol)


def khat_summary(khat: torch.Tensor) -> list[dict]:
    """Counts and fractions of datapoints in k < 0.5, 0.5 <= k < 0.7, k >= 0.7 (Yao et al. 2018)."""
    khat = torch.as_tensor(khat).flatten()
    n = khat.numel()
    if n == 0:
        raise ValueError("khat is empty")
    rows = []
    for label, lo, hi in KHAT_BINS:
        count = int(((khat >= lo) & ((khat < hi) | (hi == math.inf))).sum())
        rows.append({"range": label, "count": count, "fraction": count / n})
    return rows


def format_khat_summary(khat: torch.Tensor) -> str:
    rows = khat_summary(khat)
    khat = torch.as_tensor(khat).flatten()
    lines = [f"PSIS k-hat per datapoint (n={khat.numel()}; median {khat.median().item():.3f}, "
             f"max {khat.max().item():.3f})", f"{'range':<22}{'count':>7}{'fraction':>10}"]
    lines += [f"{r['range']:<22}{r['count']:>7}{r['fraction']:>10.3f}" for r in rows]
    return "\n".join(lines)
