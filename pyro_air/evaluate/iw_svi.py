"""Importance-weighted stochastic variational inference (IW-SVI; AIR paper, Appendix C, Eq. 41-42).

For each datapoint x separately, a diagonal Gaussian q_x(z) = N(mu_x, diag sigma_x^2) is
initialized from the amortized guide's q(z | x) and improved by S Adam steps on the IWAE-k bound

    max_{mu_x, sigma_x}  E[ log (1/k) sum_i p(x, z_i) / q_x(z_i) ],   z_i ~ q_x          (Eq. 42)

with the model held fixed; the optimized q_x is then scored with IWAE-k' (Eq. 41, k' >> k):

    log p(x) ~ log (1/k') sum_j p(x, z_j) / q_x(z_j),   z_j ~ q_x.

The same local optimization on the ELBO (k = 1 objective, averaged over particles) gives the
best per-datapoint Gaussian of Cremer, Li & Duvenaud (2018), used by ``amortization_gap``.

Any guide: a guide without ``posterior(x)`` (a user's Pyro guide, any local sites and supports)
gets one Gaussian per datapoint and local site in unconstrained space, started at the moments of its
own draws (``pyro_air.evaluate.local_guides``, which says why); x may then be a tuple of the model's
data tensors, and ``model_kwargs`` / ``data_plate`` go to every call.
All datapoints of a chunk are optimized at once: the summed loss separates over datapoints, so
Adam's per-coordinate steps are the independent per-datapoint optimizations.
"""
from __future__ import annotations

import contextlib

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.core.plates import data_plate
from pyro_air.support.progress import current_job, tqdm
from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.evaluate.chunking import as_data, batches, module_device, slice_data
from pyro_air.evaluate.local_guides import fit_site_gaussians
from pyro_air.evaluate.log_likelihood import log_likelihood
from pyro_air.infer.iwae import iwae_bound
from pyro_air.infer.log_weights import log_importance_weights

LOCAL_BOUNDS = {"iwae": iwae_bound, "elbo": lambda log_w: log_w.mean(0)}


class LocalGaussianGuide(nn.Module):
    """q(z | x_b) = N(loc[b], diag exp(log_scale[b])^2): one free Gaussian per datapoint of a fixed batch."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.log_scale = nn.Parameter(scale.detach().clamp_min(1e-8).log())

    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        if x.shape[0] != self.loc.shape[0]:
            raise ValueError(
                f"this LocalGaussianGuide holds {self.loc.shape[0]} datapoints but got a batch of {x.shape[0]}; "
                "call it with the batch it was fitted to"
            )
        q = dist.Normal(self.loc, self.log_scale.exp(), validate_args=False).to_event(1)
        with data_plate(x, num_data):
            return pyro.sample(LATENT_SITE, q)


def _check_amortized(guide) -> None:
    if not (hasattr(guide, "posterior") and isinstance(guide, nn.Module)):
        raise TypeError(
            f"IW-SVI initializes from an amortized guide's q(z | x); {type(guide).__name__} has no "
            "posterior(x) method (use a pyro_air.guides.AmortizedGuide)"
        )


def initial_gaussian(guide, x: torch.Tensor):
    """(loc, scale) [B, z_dim] of the amortized q(z | x): a diagonal Gaussian's own, or the
    marginal standard deviations of a full-covariance one."""
    _check_amortized(guide)
    q = guide.posterior(x)
    base = q.base_dist if isinstance(q, dist.Independent) else q
    if isinstance(base, dist.Normal):
        loc, scale = base.loc, base.scale
    elif isinstance(base, dist.MultivariateNormal):
        loc, scale = base.loc, base.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
    else:
        raise TypeError(
            f"IW-SVI needs a Gaussian q(z | x) (Normal, Independent Normal or MultivariateNormal) to "
            f"initialize from; {type(guide).__name__}.posterior returned {type(q).__name__}"
        )
    return loc.expand(len(x), -1).detach(), scale.expand(len(x), -1).detach()


@contextlib.contextmanager
def _frozen(*modules):
    """Model and guide fixed: eval mode, no parameter gradients; restored afterwards."""
    params = [p for m in modules for p in m.parameters()]
    flags, modes = [p.requires_grad for p in params], [m.training for m in modules]
    try:
        for p in params:
            p.requires_grad_(False)
        for m in modules:
            m.eval()
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        for m, mode in zip(modules, modes):
            m.train(mode)


def fit_local_gaussians(model, guide, x: torch.Tensor, num_steps: int = 100, num_particles: int = 50,
                        bound: str = "iwae", lr: float = 1e-2) -> LocalGaussianGuide:
    """S Adam steps of per-datapoint Gaussians on the IWAE-k (or ELBO) bound, the model fixed (Eq. 42)."""
    check_positive_int(num_steps, "num_steps", minimum=0)
    check_positive_int(num_particles, "num_particles")
    check_positive(lr, "lr")
    if bound not in LOCAL_BOUNDS:
        raise ValueError(f"unknown local bound {bound!r}; choose one of {', '.join(LOCAL_BOUNDS)}")
    bound_fn = LOCAL_BOUNDS[bound]
    _check_amortized(guide)
    with _frozen(model, guide), pyro.validation_enabled(False):
        with torch.no_grad():
            local = LocalGaussianGuide(*initial_gaussian(guide, x))
        params = list(local.parameters())
        optimizer = torch.optim.Adam(params, lr=lr)
        with torch.enable_grad():
            for _ in range(num_steps):
                log_w = log_importance_weights(model, local, x, num_particles=num_particles).log_w
                loss = -bound_fn(log_w).sum()
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads):
                    p.grad = g
                optimizer.step()
    return local


def per_chunk(x, batch_size, progress, desc, fn, device=None, work_per_point: int = 0):
    """Tensor[N]: ``fn(xb)`` (a Tensor[b]) for each batch of ``batch_size`` datapoints of x, in order;
    xb is a Tensor for a tensor x, a tuple for a tuple of data tensors. Inside a command's one bar
    (``current_job``) each batch advances it by ``work_per_point`` model evaluations per datapoint."""
    data = as_data(x)
    out = torch.empty(len(data[0]))
    ranges = list(batches(len(data[0]), check_positive_int(batch_size, "batch_size")))
    job = current_job() if progress else None
    for start, stop in tqdm(ranges, desc=desc, disable=not progress or job is not None, leave=False):
        xb = slice_data(data, start, stop, device or data[0].device)
        out[start:stop] = fn(xb[0] if isinstance(x, torch.Tensor) else xb).cpu()
        if job is not None:
            job.advance((stop - start) * work_per_point)
    return out


def is_amortized_gaussian(guide, x) -> bool:
    """Whether the guide offers a Gaussian ``posterior(x)`` (the project's encoders): the exact
    initialization."""
    if not (hasattr(guide, "posterior") and isinstance(guide, nn.Module) and isinstance(x, torch.Tensor)):
        return False
    with torch.no_grad():
        q = guide.posterior(x)
    base = q.base_dist if isinstance(q, dist.Independent) else q
    return isinstance(base, (dist.Normal, dist.MultivariateNormal))


def local_fit(model, guide, xb, num_steps, num_particles, bound, lr, model_kwargs=None, data_plate=None):
    """The per-datapoint guide fitted on one batch: ``LocalGaussianGuide`` from ``posterior(x)`` for the
    project's encoders, else ``SiteGaussians`` for any guide (module docstring)."""
    if not model_kwargs and data_plate is None and is_amortized_gaussian(guide, xb):
        return fit_local_gaussians(model, guide, xb, num_steps, num_particles, bound, lr)
    if bound not in LOCAL_BOUNDS:
        raise ValueError(f"unknown local bound {bound!r}; choose one of {', '.join(LOCAL_BOUNDS)}")
    args = (xb,) if isinstance(xb, torch.Tensor) else tuple(xb)
    modules = [m for m in (model, guide) if isinstance(m, nn.Module)]
    with _frozen(*modules), pyro.validation_enabled(False):
        return fit_site_gaussians(model, guide, args, dict(model_kwargs or {}), LOCAL_BOUNDS[bound], num_steps,
                                  num_particles, lr, data_plate=data_plate)


def iw_svi(model, guide, x, num_steps: int = 100, k_train: int = 50, k_eval: int = 5000,
           lr: float = 1e-2, batch_size: int = 100, chunk_size: int | None = None,
           progress: bool = False, model_kwargs: dict | None = None, data_plate: str | None = None) -> torch.Tensor:
    """IW-SVI estimate of log p(x) per datapoint (AIR Appendix C), Tensor[N].

    ``num_steps`` = S Adam steps on IWAE-``k_train`` per datapoint, then IWAE-``k_eval`` with the
    optimized Gaussians (chunked over samples like ``log_likelihood``). Any guide: module docstring.
    """
    device = module_device(model, default=as_data(x)[0].device)
    check_positive_int(k_eval, "k_eval")
    check_positive_int(num_steps, "num_steps", minimum=0)
    check_positive_int(k_train, "k_train")
    check_positive(lr, "lr")

    def one_chunk(xb):
        local = local_fit(model, guide, xb, num_steps, k_train, "iwae", lr, model_kwargs, data_plate)
        return log_likelihood(model, local, xb, num_samples=k_eval, chunk_size=chunk_size,
                              batch_size=len(xb) if isinstance(xb, torch.Tensor) else len(xb[0]),
                              model_kwargs=model_kwargs, data_plate=data_plate)

    return per_chunk(x, batch_size, progress, f"IW-SVI, S={num_steps}", one_chunk, device,
                     work_per_point=iw_svi_work(num_steps, k_train, k_eval))


def iw_svi_work(num_steps: int, k_train: int, k_eval: int) -> int:
    """Model evaluations per datapoint of ``iw_svi`` (what a command's one bar counts)."""
    return num_steps * k_train + k_eval
