"""Test quantities per image: a row of the AIR paper's Tables 1-3 (``evaluate_row``: -log p(x) by
IWAE-S, Eq. 20 / Eq. 40; -L_k(x), the bound the model was trained with: the ELBO of Eq. 5 for
k = 1, the IWAE-k bound of Eq. 20 otherwise; the inference gap log p(x) - L_k(x)) and
KL(q(z|x) || N(0, I)). Every number is per test image (Tensor[N]), so models are compared by
*paired* differences on the same images (``pyro_air.compare.report``).

``resume_dir`` (with ``seed``): the evaluators keep their finished batches there
(``pyro_air.evaluate.resume``), so a row cut short and asked for again continues where it stopped and
gives the uninterrupted numbers; its files are deleted when the row is returned, unless
``keep_resume_files`` (a caller whose own task goes on after the row removes the folder itself).
"""
from __future__ import annotations

import torch

from pyro_air.core.seeds import derive_seed
from pyro_air.evaluate import elbo, log_likelihood, mean_stderr
from pyro_air.evaluate.resume import resume_files
from pyro_air.guides.consistency import diagonal_normal

def _sub(seed, *keys):
    return None if seed is None else derive_seed(seed, *keys)


def bound_per_datapoint(model, guide, x: torch.Tensor, k: int = 1, num_estimates: int = 100,
                        seed: int | None = None, resume_dir=None, keep_resume_files: bool = False) -> torch.Tensor:
    """L_k(x) per datapoint, averaged over ``num_estimates`` independent draws: the ELBO (k = 1,
    Eq. 5) or the IWAE-k bound (Eq. 20). Tensor[N]. ``seed``: the draws come from streams derived
    from it (one per estimate), the caller's RNG untouched; None: from the caller's stream.
    ``resume_dir``: module docstring."""
    names = ["bound"] if k == 1 else [f"bound{j}" for j in range(num_estimates)]
    with resume_files(resume_dir, *names, keep=keep_resume_files) as files:
        if k == 1:
            return elbo(model, guide, x, num_samples=num_estimates, seed=seed, resume_file=files[0],
                        keep_resume_file=True)
        return torch.stack([log_likelihood(model, guide, x, num_samples=k, seed=_sub(seed, j), resume_file=files[j],
                                           keep_resume_file=True) for j in range(num_estimates)]).mean(0)


def evaluate_row(model, guide, x: torch.Tensor, k: int = 1, num_samples: int = 5000, num_estimates: int = 100,
                 progress: bool = False, seed: int | None = None, resume_dir=None,
                 keep_resume_files: bool = False) -> dict:
    """Per-image log p(x) (IWAE-``num_samples``), L_k(x) and gap; with their mean ± s.e. summaries.

    ``seed`` (e.g. ``stream_seed(run_seed, "evaluation")``) fixes every draw: the same model gives
    the same row, and models evaluated with one seed share their random numbers (paired differences
    then carry less Monte Carlo noise). ``resume_dir``: module docstring."""
    with resume_files(resume_dir, "log_px", keep=keep_resume_files) as (log_px_file,):
        log_px = log_likelihood(model, guide, x, num_samples=num_samples, progress=progress, seed=_sub(seed, 0),
                                resume_file=log_px_file, keep_resume_file=True)
        bound = bound_per_datapoint(model, guide, x, k, num_estimates, seed=_sub(seed, 1), resume_dir=resume_dir,
                                    keep_resume_files=keep_resume_files)
    return {"log_px": log_px, "bound": bound, "nll": mean_stderr(-log_px), "neg_elbo": mean_stderr(-bound),
            "inference_gap": mean_stderr(log_px - bound)}



def kl_to_standard_normal(guide, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per datapoint: closed form for a diagonal Gaussian,
    0.5 sum_j (mu_j^2 + s_j^2 - 1) - log s_j; otherwise a Monte Carlo mean of log q(z|x) - log N(z; 0, I)."""
    guide.eval()
    try:
        with torch.no_grad():
            q = guide.posterior(x)
            try:
                loc, scale = diagonal_normal(q)
            except TypeError:
                z = q.sample((num_samples,))
                prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
                return (q.log_prob(z) - prior.log_prob(z).sum(-1)).mean(0)
            return (0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()).sum(-1)
    finally:
        guide.train()
