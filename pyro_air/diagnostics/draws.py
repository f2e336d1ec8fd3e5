"""Guide draws with their importance weights, per datapoint, and importance resampling.

For each datapoint x_n and s = 1..S:

    z_ns ~ q(z | x_n),    log w_ns = log p(x_n, z_ns) - log q(z_ns | x_n)

(the shared primitive ``pyro_air.infer.log_importance_weights``, docs/design.md, contract 2), computed
in chunks of datapoints and of samples in evaluation mode (docs/design.md, contract 3), so peak memory
per chunk does not grow with S. Only the results, [N, S] weights and [N, S, ...] draws, are
held. Any model and guide ``pyro_air.evaluate.log_likelihood`` accepts are accepted (x a tensor or
a tuple of the model's data tensors); every local latent site is kept under its own name
(``ImportanceDraws.sites``), and ``z`` is the site ``"z"``, or the only local site, as [N, S, dim].

Importance resampling (sampling-importance-resampling, Rubin 1988): for each datapoint, draw M
indices i_1..i_M independently, with replacement, from Categorical(w_n1 / sum_s w_ns, ...,
w_nS / sum_s w_ns) and keep z_{n i_m}. As S grows the resampled draws are distributed as the true
posterior p(z | x_n), because p(z | x) is proportional to w(z) q(z | x) (importance sampling
identity; IWAE, Burda et al. 2016, Eq. 8 and Cremer et al. 2017 view the IWAE bound the same way).
With finite S they carry at most the importance effective sample size
(sum_s w_ns)^2 / sum_s w_ns^2 of independent information, however many copies M are drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pyro_air.support.progress import current_job, tqdm
from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate.chunking import (
    as_data,
    batches,
    default_chunk_size,
    evaluation_mode,
    module_device,
    row_size,
    slice_data,
)
from pyro_air.evaluate.log_likelihood import TracedEvaluation
from pyro_air.infer.log_weights import global_sites_trace, sample_sites


@dataclass
class ImportanceDraws:
    z: torch.Tensor | None   # [N, S, z_dim] guide draws (None when not kept); [N, S, len(dims)] with dims
    log_w: torch.Tensor      # [N, S] log importance weights
    dims: tuple | None = None  # the latent dimensions z holds, in its column order (None: all)
    sites: dict | None = None  # every local latent site: name -> [N, S, *its per-datapoint shape]

    def rows(self, index) -> ImportanceDraws:
        """The draws of some datapoints (e.g. ``draws.rows([3, 0])``): the same samples, not new ones."""
        sites = None if self.sites is None else {k: v[index] for k, v in self.sites.items()}
        return ImportanceDraws(None if self.z is None else self.z[index], self.log_w[index], self.dims, sites)

    @property
    def num_samples(self) -> int:
        return self.log_w.shape[1]


def importance_draws(model, guide, x, num_samples: int, chunk_size: int | None = None,
                     batch_size: int | None = None, keep_z: bool = True,
                     progress: bool = False, keep_dims=None, model_kwargs: dict | None = None,
                     data_plate: str | None = None) -> ImportanceDraws:
    """S guide draws per datapoint and their log weights; see the module docstring.

    ``keep_dims`` (e.g. ``(0, 1)``): keep only these latent dimensions of the draws ([N, S, 2]
    instead of [N, S, z_dim] in memory), for plots of a pair of dimensions."""
    dims = None if keep_dims is None else tuple(int(d) for d in keep_dims)
    check_positive_int(num_samples, "num_samples")
    data = as_data(x)
    n = len(data[0])
    batch_size = check_positive_int(batch_size or min(n, 100), "batch_size")
    chunk = check_positive_int(chunk_size or default_chunk_size(num_samples, batch_size, row_size(data)),
                               "chunk_size")
    device = module_device(model, default=data[0].device)
    log_w = torch.empty(n, num_samples)
    sites = {}
    with evaluation_mode(model, guide):
        with torch.random.fork_rng(devices=[]):
            traced = TracedEvaluation(model, guide, slice_data(data, 0, min(n, batch_size), device), model_kwargs,
                                      data_plate, num_data=n)
        job = current_job() if progress else None   # a command's one bar, if any
        for start, stop in tqdm(list(batches(n, batch_size)), desc=f"log weights, S={num_samples}",
                                disable=not progress or job is not None, leave=False):
            xb = slice_data(data, start, stop, device)
            replay = None
            s0 = 0
            while s0 < num_samples:   # a while loop: the step shrinks to 1 once a guide cannot vectorize
                k = min(chunk if traced.vectorize is not False else 1, num_samples - s0)
                lw = traced.weights(xb, k, replay)
                if lw.global_term is not None and replay is None:
                    replay = global_sites_trace(lw)
                if traced.vectorize is False and k > 1:   # found out now: the traces hold one run
                    k = 1
                    lw = traced.weights(xb, 1, replay)
                log_w[start:stop, s0:s0 + k] = lw.log_w.T.cpu()
                if job is not None:
                    job.advance((stop - start) * k)
                if keep_z:
                    for name, value in local_values(lw).items():   # [k, B, ...]
                        if name not in sites:
                            sites[name] = torch.empty(n, num_samples, *value.shape[2:])
                        sites[name][start:stop, s0:s0 + k] = value.transpose(0, 1).cpu()
                s0 += k
    z_all = None
    if keep_z and sites:
        name = LATENT_SITE if LATENT_SITE in sites else next(iter(sites)) if len(sites) == 1 else None
        if name is not None:
            z_all = sites[name] if sites[name].dim() == 3 else sites[name].reshape(n, num_samples, -1)
            if dims is not None:
                z_all = z_all[..., list(dims)]
    return ImportanceDraws(z_all, log_w, dims, sites if keep_z else None)


def local_values(weights) -> dict:
    """{name: [K, B, *shape]} of the guide's local latent sites in one run's trace: the particle and
    data dims moved to the front, plate dims of size 1 dropped, the rest (inner plates, the event)
    kept as the site's per-datapoint shape."""
    layout, (k, b) = weights.layout, weights.log_w.shape
    out = {}
    for site in sample_sites(weights.guide_trace):
        if not layout.is_local(site):
            continue
        v, event = site["value"], len(site["fn"].event_shape)
        p, d = layout.particle_dim, layout.data_dim(site)
        nb = v.dim() - event
        need = max(-p if p is not None else 0, -d if d is not None else 0)
        if nb < need:
            v, nb = v.reshape((1,) * (need - nb) + v.shape), need
        pi = None if p is None else nb + p
        di = None if d is None else nb + d
        rest = [i for i in range(nb) if i not in (pi, di)]
        v = v.permute([i for i in (pi, di) if i is not None] + rest + list(range(nb, v.dim())))
        if pi is None:
            v = v.unsqueeze(0)
        if di is None:
            v = v.unsqueeze(1)
        shape = [n for i, n in enumerate(v.shape[2:2 + len(rest)]) if n != 1] + list(v.shape[2 + len(rest):])
        out[site["name"]] = v.expand(k, b, *v.shape[2:]).reshape(k, b, *shape)
    return out


def importance_ess(log_w: torch.Tensor) -> torch.Tensor:
    """Effective sample size (sum_s w_s)^2 / sum_s w_s^2 per row of [N, S] log weights (Kong 1992)."""
    return torch.exp(2 * torch.logsumexp(log_w, -1) - torch.logsumexp(2 * log_w, -1))


def resample_indices(log_w: torch.Tensor, num_draws: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[N, M] indices drawn with replacement from the self-normalized weights of each row of log_w."""
    check_positive_int(num_draws, "num_draws")
    probs = torch.softmax(log_w.double(), dim=-1)
    return torch.multinomial(probs, num_draws, replacement=True, generator=generator)


def resample(draws: ImportanceDraws, num_draws: int | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-resampled draws [N, M, z_dim] approximating p(z | x_n), and their indices [N, M]."""
    if draws.z is None:
        raise ValueError("these draws were made with keep_z=False; call importance_draws(..., keep_z=True)")
    idx = resample_indices(draws.log_w, num_draws or draws.num_samples, generator)
    z = torch.gather(draws.z, 1, idx.unsqueeze(-1).expand(-1, -1, draws.z.shape[-1]))
    return z, idx
