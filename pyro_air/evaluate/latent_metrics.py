"""Latent-space metrics of a trained encoder (InfoVAE, Zhao, Song & Ermon: Figures 2, 3 and 6).

With q(z) = (1/N) sum_n q(z | x_n) the aggregate posterior over an evaluation set x_1..x_N:

- ``latent_mmd``: MMD(q(z), p(z)) on the whole set (one z_n ~ q(z | x_n) per datapoint against N
  fresh prior draws; the paper's Fig. 6A "during evaluation we can use the full dataset"),
  computed in row chunks (``pyro_air.infer.mmd``).
- ``log_det_cov``: log det Cov[q(z)] from samples (Figure 2; 0 for the N(0, I) prior), also
  divided by the dimension (Fig. 6B) and the per-dimension log variances.
- ``active_units``: Burda et al. (2016, section 5.2): dimension j is active when
  A_j = Cov_x(E_q[z_j | x]) > 0.01.
- ``mutual_information``: I_q(x; z) = E_x KL(q(z | x) || q(z)), estimated (Hoffman & Johnson 2016)
  as (1/N) sum_n [log q(z_n | x_n) - log (1/N) sum_m q(z_n | x_m)],  z_n ~ q(z | x_n),
  the mixture taken over the given points (a minibatch gives the usual minibatch estimator).
  It lies in [0, log N].

Each function returns plain numbers (or small tensors) and runs without gradients, in eval mode.
"""
from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.evaluate.chunking import (
    batches,
    evaluation_mode,
    module_device,
    streaming_logmeanexp,
)
from pyro_air.infer.mmd import mmd

ACTIVE_UNIT_THRESHOLD = 0.01


def _check_points(x: torch.Tensor, minimum: int = 2) -> None:
    if x.dim() != 2 or len(x) < minimum:
        raise ValueError(f"latent metrics need x of shape [N, D] with N >= {minimum}, got {list(x.shape)}")


def aggregate_posterior_samples(guide, x: torch.Tensor, num_samples: int = 1, batch_size: int = 1000) -> torch.Tensor:
    """Draws z ~ q(z | x_n), ``num_samples`` per datapoint, as [num_samples * N, z_dim] (any guide)."""
    check_positive_int(num_samples, "num_samples")
    device = module_device(guide)
    out = []
    with evaluation_mode(guide):
        for start, stop in batches(len(x), batch_size):
            with pyro.plate("particles", num_samples, dim=-2):
                trace = poutine.trace(guide).get_trace(x[start:stop].to(device))
            z = trace.nodes[LATENT_SITE]["value"]
            out.append(z.reshape(-1, stop - start, z.shape[-1]).expand(num_samples, -1, -1).cpu())
    return torch.cat(out, dim=1).reshape(-1, out[0].shape[-1])


def _posterior(guide, xb: torch.Tensor):
    if not hasattr(guide, "posterior"):
        raise ValueError(
            f"{type(guide).__name__} has no closed-form q(z | x) (no .posterior); this metric needs an "
            "amortized guide such as 'gaussian'"
        )
    return guide.posterior(guide.encoder_input(xb))


def posterior_means(guide, x: torch.Tensor, num_samples: int = 100, batch_size: int = 1000) -> torch.Tensor:
    """E_q[z | x_n] as [N, z_dim]: exact for an amortized guide, else a ``num_samples`` average."""
    if not hasattr(guide, "posterior"):
        z = aggregate_posterior_samples(guide, x, num_samples, batch_size)
        return z.reshape(num_samples, len(x), -1).mean(0)
    device = module_device(guide)
    with evaluation_mode(guide):
        return torch.cat([_posterior(guide, x[a:b].to(device)).mean.cpu() for a, b in batches(len(x), batch_size)])


def log_det_cov(z: torch.Tensor) -> dict:
    """log det of the sample covariance of z [n, d], divided by d too, and the log variances [d].

    With n <= d points the sample covariance is singular and its log det is -inf whatever q(z) is;
    that case returns NaN (not a measurement) and ``format_latent_metrics`` prints "n<=d"."""
    _check_points(z)
    if z.shape[0] <= z.shape[-1]:
        cov = torch.cov(z.double().T).reshape(z.shape[-1], z.shape[-1])
        return {"log_det_cov": float("nan"), "log_det_cov_per_dim": float("nan"),
                "log_var": torch.diagonal(cov).log().float()}
    cov = torch.cov(z.double().T).reshape(z.shape[-1], z.shape[-1])
    logdet = torch.linalg.slogdet(cov)
    value = logdet.logabsdet.item() if logdet.sign > 0 else float("-inf")
    return {"log_det_cov": value, "log_det_cov_per_dim": value / z.shape[-1],
            "log_var": torch.diagonal(cov).log().float()}


def aggregate_log_det_cov(guide, x: torch.Tensor, num_samples: int = 1) -> dict:
    """``log_det_cov`` of samples from the aggregate posterior q(z) over x (InfoVAE Figure 2)."""
    _check_points(x)
    return log_det_cov(aggregate_posterior_samples(guide, x, num_samples))


def active_units(guide, x: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict:
    """A_j = Var_x(E_q[z_j | x]) per dimension and the number of j with A_j > ``threshold``."""
    _check_points(x)
    check_positive(threshold, "threshold")
    activity = posterior_means(guide, x).double().var(0, unbiased=True).float()
    return {"active_units": int((activity > threshold).sum()), "activity": activity}


def latent_mmd(model, guide, x: torch.Tensor, kernel: str = "rbf", bandwidth=None, unbiased: bool = True,
               chunk_size: int = 1000, seed: int = 0) -> float:
    """MMD(q(z), p(z)) over the whole set: one z_n ~ q(z | x_n) each against N prior draws."""
    _check_points(x)
    z = aggregate_posterior_samples(guide, x)
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            prior = model.prior(len(z), z).sample()
    finally:
        torch.set_rng_state(generator_state)
    return mmd(z, prior, kernel, bandwidth, unbiased, chunk_size=chunk_size).item()


def mutual_information(guide, x: torch.Tensor, chunk_size: int = 500) -> float:
    """The estimate of I_q(x; z) in the module docstring (mixture over all of x, in chunks)."""
    _check_points(x)
    device = module_device(guide)
    x = x.to(device)
    with evaluation_mode(guide):
        q_all = _posterior(guide, x)
        z = q_all.sample()                                  # z_n ~ q(z | x_n), [N, d]
        log_q_own = q_all.log_prob(z)                       # log q(z_n | x_n), [N]
        cross = (_posterior(guide, x[a:b]).log_prob(z.unsqueeze(-2)).T for a, b in batches(len(x), chunk_size))
        log_q_aggregate = streaming_logmeanexp(cross)       # log (1/N) sum_m q(z_n | x_m), [N]
    return (log_q_own - log_q_aggregate).mean().item()


def latent_metrics(model, guide, x: torch.Tensor, seed: int = 0) -> dict:
    """All of the above as plain numbers: mmd, log_det_cov (+ per dim), active_units, mutual_information."""
    pyro.set_rng_seed(seed)
    cov = aggregate_log_det_cov(guide, x)
    metrics = {
        "mmd": latent_mmd(model, guide, x, seed=seed),
        "log_det_cov": cov["log_det_cov"],
        "log_det_cov_per_dim": cov["log_det_cov_per_dim"],
        "active_units": active_units(guide, x)["active_units"],
        "z_dim": int(cov["log_var"].numel()),
    }
    if hasattr(guide, "posterior"):
        metrics["mutual_information"] = mutual_information(guide, x)
        metrics["mutual_information_max"] = math.log(len(x))
    return metrics


def format_latent_metrics(rows: dict) -> str:
    """A plain-text table; ``rows`` maps a row label to a ``latent_metrics`` result."""
    columns = [("mmd", "MMD", "{:.4f}"), ("log_det_cov", "log det Cov", "{:.3f}"),
               ("log_det_cov_per_dim", "per dim", "{:.3f}"), ("active_units", "active units", "{}"),
               ("mutual_information", "I(x;z)", "{:.3f}")]
    header = ["", *[name for _, name, _ in columns]]
    def cell(r, key, fmt):
        if key not in r:
            return "-"
        if key.startswith("log_det_cov") and math.isnan(r[key]):
            return "n<=d"  # too few points for a non-singular covariance: use more (--max-points)
        return fmt.format(r[key])

    body = [[label, *[cell(r, key, fmt) for key, _, fmt in columns]] for label, r in rows.items()]
    for line in body:
        line[4] = f"{line[4]}/{rows[line[0]]['z_dim']}"
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths))
                     for line in [header, ["-" * w for w in widths], *body])
