"""The inference gap split into approximation and amortization gaps (Cremer, Li & Duvenaud 2018,
"Inference suboptimality in variational autoencoders", section 3 and Table 2), per datapoint.

For a datapoint x, a guide family Q (here diagonal Gaussians, the family of the zoo's encoders)
and the amortized encoder q_phi(z | x) in Q:

    L[q](x)  = E_q[log p(x, z) - log q(z)]                        the ELBO of q
    q*_x     = argmax_{q in Q} L[q](x)                            the best member of Q for this x
    inference gap      log p(x) - L[q_phi]  =  approximation gap + amortization gap
    approximation gap  log p(x) - L[q*_x]   = KL(q*_x || p(z | x))   (what the family cannot fit)
    amortization gap   L[q*_x] - L[q_phi]                          (what the encoder misses)

log p(x) is estimated by AIS with HMC (``pyro_air.evaluate.ais``), q*_x by Adam on the ELBO of a
free diagonal Gaussian per datapoint, started at the encoder's q_phi(z | x)
(``iw_svi.fit_local_gaussians`` with bound="elbo", the optimization Cremer et al. describe), and
both ELBOs by Monte Carlo with ``elbo_samples`` draws. The estimates carry their estimators'
errors: AIS is a stochastic lower bound, so with too few steps the approximation gap comes out
too small (even negative); an unconverged q*_x makes the amortization gap too small and the
approximation gap too large. Report the budget with the numbers.

Linear-Gaussian check (tests/test_gap_decomposition.py): with the Gaussian posterior N(mu, Lambda^-1)
the best diagonal Gaussian is N(mu, diag(1 / Lambda_ii)) and the approximation gap is
(sum_i log Lambda_ii - log det Lambda) / 2 for every x (Bishop, PRML section 10.1.2).
"""
from __future__ import annotations

import torch

from pyro_air.support.atomic import atomic_save_figure
from pyro_air.support.progress import tqdm
from pyro_air.core.seeds import derive_seed, seeded
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate.ais import ais
from pyro_air.evaluate.chunking import as_data, batches, module_device, slice_data
from pyro_air.evaluate.iw_svi import LocalGaussianGuide, local_fit
from pyro_air.evaluate.log_likelihood import elbo
from pyro_air.evaluate.summary import mean_stderr

GAP_COLUMNS = {
    "log_px": "log p(x) (AIS)",
    "elbo_optimal": "L[q*]",
    "elbo_amortized": "L[q_phi]",
    "approximation_gap": "approx. gap",
    "amortization_gap": "amort. gap",
    "inference_gap": "inference gap",
}


def optimal_local_elbo(model, guide, x, num_steps: int = 500, num_particles: int = 10,
                       lr: float = 1e-2, elbo_samples: int = 1000, batch_size: int = 100, progress: bool = False,
                       seed: int | None = None, return_fits: bool = False, model_kwargs: dict | None = None,
                       data_plate: str | None = None):
    """L[q*_x] per datapoint, Tensor[N]: the ELBO of a diagonal Gaussian fitted to each x alone
    (``num_steps`` Adam steps at rate ``lr`` on the ``num_particles``-sample ELBO, started at the
    encoder's q(z | x)), scored with ``elbo_samples`` draws. With ``return_fits`` also returns
    the fitted (loc, scale), each [N, z_dim] (the project's Gaussian encoders). Any other guide gets
    per-datapoint Gaussians in each local site's unconstrained space (``iw_svi.local_fit``)."""
    check_positive_int(num_steps, "num_steps (Adam steps of the per-datapoint Gaussians)", minimum=0)
    check_positive_int(batch_size, "batch_size")
    data = as_data(x)
    device = module_device(model, default=data[0].device)
    values, locs, scales = [], [], []
    ranges = list(batches(len(data[0]), batch_size))
    for i, (start, stop) in enumerate(tqdm(ranges, desc=f"L[q*], {num_steps} steps", disable=not progress,
                                           leave=False)):
        xb = slice_data(data, start, stop, device)
        xb = xb[0] if isinstance(x, torch.Tensor) else xb
        with seeded(None if seed is None else derive_seed(seed, i), device):
            local = local_fit(model, guide, xb, num_steps, num_particles, "elbo", lr, model_kwargs, data_plate)
            values.append(elbo(model, local, xb, num_samples=elbo_samples, batch_size=stop - start,
                               model_kwargs=model_kwargs, data_plate=data_plate).cpu())
        if return_fits:
            if not isinstance(local, LocalGaussianGuide):
                raise ValueError("return_fits needs a Gaussian amortized guide (posterior(x)); this guide's local fits "
                                 "are per site: call iw_svi.local_fit")
            locs.append(local.loc.detach().cpu())
            scales.append(local.log_scale.detach().exp().cpu())
    out = torch.cat(values)
    return (out, torch.cat(locs), torch.cat(scales)) if return_fits else out


def gap_decomposition(model, guide, x, ais_steps: int = 500, ais_chains: int = 16,
                      ais_leapfrog: int = 10, local_steps: int = 500, local_particles: int = 10,
                      local_lr: float = 1e-2, elbo_samples: int = 1000, batch_size: int = 100,
                      progress: bool = False, seed: int | None = 0, ais_kwargs: dict | None = None,
                      model_kwargs: dict | None = None, data_plate: str | None = None) -> dict:
    """log p(x), L[q*], L[q_phi] and the gaps of the module docstring, each Tensor[N].

    AIS anneals from the guide's q(z | x) (``ais_steps`` steps, ``ais_chains`` chains,
    ``ais_leapfrog`` leapfrog steps; ``ais_kwargs`` go to ``ais``); q*_x as ``optimal_local_elbo``.
    ``seed`` seeds every part (None: the caller's RNG stream).
    """
    check_positive_int(elbo_samples, "elbo_samples")
    seeds = [None if seed is None else derive_seed(seed, k) for k in range(3)]
    shared = {"model_kwargs": model_kwargs, "data_plate": data_plate}
    log_px = ais(model, guide, x, num_steps=ais_steps, num_chains=ais_chains, num_leapfrog=ais_leapfrog,
                 progress=progress, seed=seeds[0], **shared, **(ais_kwargs or {}))
    optimal = optimal_local_elbo(model, guide, x, local_steps, local_particles, local_lr, elbo_samples,
                                 batch_size, progress, seeds[1], **shared)
    amortized = elbo(model, guide, x, num_samples=elbo_samples, batch_size=batch_size, progress=progress,
                     seed=seeds[2], **shared)
    return {
        "log_px": log_px,
        "elbo_optimal": optimal,
        "elbo_amortized": amortized,
        "approximation_gap": log_px - optimal,
        "amortization_gap": optimal - amortized,
        "inference_gap": log_px - amortized,
    }


def summarize_gaps(result: dict) -> dict:
    """Mean ± standard error over datapoints of every column of ``gap_decomposition``'s result;
    the gaps are paired differences on the same datapoints, so their errors are the paired ones."""
    return {key: mean_stderr(result[key]) for key in GAP_COLUMNS if key in result}


def format_gap_table(rows: dict, columns=tuple(GAP_COLUMNS)) -> str:
    """A plain-text table; ``rows`` maps a label (e.g. "VAE, test") to a ``gap_decomposition`` result."""
    header = ["", *[GAP_COLUMNS[c] for c in columns]]
    body = []
    for label, result in rows.items():
        summary = summarize_gaps(result)
        body.append([label, *[str(summary[c]) for c in columns]])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(v.ljust(w) for v, w in zip(line, widths))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, body)])


def plot_gaps(rows: dict, path):
    """Stacked bars of the mean approximation and amortization gaps per row (± s.e. of each), saved
    to ``path``; returns the matplotlib Figure (made without pyplot, so any backend works)."""
    from pathlib import Path

    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("plot_gaps needs at least one row")
    labels = list(rows)
    summaries = [summarize_gaps(rows[k]) for k in labels]
    approx = [s["approximation_gap"] for s in summaries]
    amort = [s["amortization_gap"] for s in summaries]
    fig = Figure(figsize=(max(4.0, 1.3 * len(labels) + 1.5), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    pos = range(len(labels))
    ax.bar(pos, [a.mean for a in approx], yerr=[a.stderr for a in approx], color="tab:blue", capsize=3,
           label="approximation gap  log p(x) - L[q*]")
    ax.bar(pos, [a.mean for a in amort], bottom=[a.mean for a in approx], yerr=[a.stderr for a in amort],
           color="tab:orange", capsize=3, label="amortization gap  L[q*] - L[q_phi]")
    ax.set_xticks(list(pos))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("nats per image")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("inference gap = approximation + amortization (Cremer et al. 2018)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(fig, path, dpi=120)
    return fig


def mean_field_gaussian_optimum(posterior_loc: torch.Tensor, posterior_cov: torch.Tensor):
    """The best diagonal Gaussian for a Gaussian posterior N(mu, Sigma) (reverse KL, the ELBO's):
    loc mu, variances 1 / Lambda_ii with Lambda = Sigma^-1, and KL(q* || p) = (sum_i log Lambda_ii -
    log det Lambda) / 2 = the approximation gap (Bishop, PRML section 10.1.2). Returns (loc, scale, kl)."""
    precision = torch.linalg.inv(posterior_cov)
    diag = precision.diagonal(dim1=-2, dim2=-1)
    kl = 0.5 * (diag.log().sum(-1) - torch.logdet(precision))
    return posterior_loc, diag.rsqrt(), kl


__all__ = ["GAP_COLUMNS", "format_gap_table", "gap_decomposition", "mean_field_gaussian_optimum",
           "optimal_local_elbo", "plot_gaps", "summarize_gaps"]
