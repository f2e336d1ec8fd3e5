"""Train and evaluate VAE vs its AIR variants (DVAE, WNI-VAE) on the same data and test images.

Shared by ``pyro-air compare`` (the README's main job) and ``experiments/air/run_air.py``.
Columns follow the AIR paper's Tables 1-3 (Shu et al. 2018): -log p(x) (IWAE-S, Eq. 20 / Eq. 40),
-L_k(x) (the amortized bound the model was trained with: the ELBO of Eq. 5 for k = 1, the IWAE-k
bound of Eq. 20 otherwise) and the inference gap  Delta_inf(x) = log p(x) - L_k(x)  (Table 1-3 caption).
Every number is per test image (Tensor[N]), so models are compared by *paired* differences on the
same images.
"""
from __future__ import annotations

import torch

from pyro_air.core.seeds import derive_seed
from pyro_air.evaluate import elbo, log_likelihood, mean_stderr
from pyro_air.runs import vae_spec


def air_spec(method: str, k: int = 1, sigma: float | None = None, H: float | None = None,
             alpha: float = 1.0, **spec_kwargs) -> dict:
    """The run spec of one AIR method: "vae" (plain encoder), "dvae" (Denoising(GaussianEncoder,
    sigma, alpha)), "wni" (WeightNormEncoder with cap H) or "large" (one more encoder layer), trained
    with the ELBO (k = 1) or the IWAE-k bound."""
    objective = "elbo" if k == 1 else "iwae"
    if method == "vae":
        guide, cfg = "gaussian", {}
    elif method == "dvae":
        if sigma is None:
            raise ValueError("method 'dvae' needs sigma (the denoising noise scale)")
        guide, cfg = "denoising", {"sigma": sigma, "alpha": alpha, "encoder": "gaussian"}
    elif method == "wni":
        if H is None:
            raise ValueError("method 'wni' needs H (the weight-norm cap)")
        guide, cfg = "weightnorm", {"H": H}
    elif method == "large":
        guide, cfg = "gaussian-large", {}
    else:
        raise ValueError(f"unknown AIR method {method!r}; use one of vae, dvae, wni, large")
    return vae_spec(guide=guide, objective=objective, num_particles=k, guide_cfg=cfg, **spec_kwargs)


def _sub(seed, *keys):
    return None if seed is None else derive_seed(seed, *keys)


def bound_per_datapoint(model, guide, x: torch.Tensor, k: int = 1, num_estimates: int = 100,
                        seed: int | None = None) -> torch.Tensor:
    """L_k(x) per datapoint, averaged over ``num_estimates`` independent draws: the ELBO (k = 1,
    Eq. 5) or the IWAE-k bound (Eq. 20). Tensor[N]. ``seed``: the draws come from streams derived
    from it (one per estimate), the caller's RNG untouched; None: from the caller's stream."""
    if k == 1:
        return elbo(model, guide, x, num_samples=num_estimates, seed=seed)
    return torch.stack([log_likelihood(model, guide, x, num_samples=k, seed=_sub(seed, j))
                        for j in range(num_estimates)]).mean(0)


def evaluate_row(model, guide, x: torch.Tensor, k: int = 1, num_samples: int = 5000, num_estimates: int = 100,
                 progress: bool = False, seed: int | None = None) -> dict:
    """Per-image log p(x) (IWAE-``num_samples``), L_k(x) and gap; with their mean ± s.e. summaries.

    ``seed`` (e.g. ``stream_seed(run_seed, "evaluation")``) fixes every draw: the same model gives
    the same row, and models evaluated with one seed share their random numbers (paired differences
    then carry less Monte Carlo noise)."""
    log_px = log_likelihood(model, guide, x, num_samples=num_samples, progress=progress, seed=_sub(seed, 0))
    bound = bound_per_datapoint(model, guide, x, k, num_estimates, seed=_sub(seed, 1))
    return {"log_px": log_px, "bound": bound, "nll": mean_stderr(-log_px), "neg_elbo": mean_stderr(-bound),
            "inference_gap": mean_stderr(log_px - bound)}


def paired_difference(row: dict, baseline: dict, key: str = "log_px"):
    """Mean ± s.e. over test images of  -log p_model(x) - (-log p_baseline(x))  (negative = better)."""
    return mean_stderr(baseline[key] - row[key])
