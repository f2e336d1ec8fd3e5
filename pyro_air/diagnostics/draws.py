"""Guide draws with their importance weights, per datapoint, and importance resampling.

For each datapoint x_n and s = 1..S:

    z_ns ~ q(z | x_n),    log w_ns = log p(x_n, z_ns) - log q(z_ns | x_n)

(the shared primitive ``pyro_air.infer.log_importance_weights``, docs/design.md, contract 2), computed
in chunks of datapoints and of samples in evaluation mode (docs/design.md, contract 3), so peak memory
per chunk does not grow with S. Only the results, [N, S] weights and [N, S, z_dim] draws, are
held.

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

from pyro_air.core.progress import tqdm
from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate.chunking import (
    batches,
    default_chunk_size,
    evaluation_mode,
    module_device,
)
from pyro_air.infer.log_weights import log_importance_weights


@dataclass
class ImportanceDraws:
    z: torch.Tensor | None   # [N, S, z_dim] guide draws (None when not kept); [N, S, len(dims)] with dims
    log_w: torch.Tensor      # [N, S] log importance weights
    dims: tuple | None = None  # the latent dimensions z holds, in its column order (None: all)

    def rows(self, index) -> ImportanceDraws:
        """The draws of some datapoints (e.g. ``draws.rows([3, 0])``): the same samples, not new ones."""
        return ImportanceDraws(None if self.z is None else self.z[index], self.log_w[index], self.dims)

    @property
    def num_samples(self) -> int:
        return self.log_w.shape[1]


def importance_draws(model, guide, x: torch.Tensor, num_samples: int, chunk_size: int | None = None,
                     batch_size: int | None = None, keep_z: bool = True,
                     progress: bool = False, keep_dims=None) -> ImportanceDraws:
    """S guide draws per datapoint and their log weights; see the module docstring.

    ``keep_dims`` (e.g. ``(0, 1)``): keep only these latent dimensions of the draws ([N, S, 2]
    instead of [N, S, z_dim] in memory), for plots of a pair of dimensions."""
    dims = None if keep_dims is None else tuple(int(d) for d in keep_dims)
    check_positive_int(num_samples, "num_samples")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a tensor of shape [N, D], got {getattr(x, 'shape', type(x).__name__)}")
    if len(x) == 0:
        raise ValueError("x is empty; pass at least one datapoint")
    batch_size = check_positive_int(batch_size or min(len(x), 100), "batch_size")
    chunk = check_positive_int(chunk_size or default_chunk_size(num_samples, batch_size, x.shape[1]),
                               "chunk_size")
    device = module_device(model)
    log_w = torch.empty(len(x), num_samples)
    z_all = None
    with evaluation_mode(model, guide):
        for start, stop in tqdm(list(batches(len(x), batch_size)), desc=f"log weights, S={num_samples}",
                                disable=not progress, leave=False):
            xb = x[start:stop].to(device)
            for s0 in range(0, num_samples, chunk):
                k = min(chunk, num_samples - s0)
                lw = log_importance_weights(model, guide, xb, num_particles=k)
                log_w[start:stop, s0:s0 + k] = lw.log_w.T.cpu()
                if keep_z:
                    z = lw.guide_trace.nodes[LATENT_SITE]["value"]  # [k, B, z_dim]
                    if dims is not None:
                        z = z[..., list(dims)]
                    if z_all is None:
                        z_all = torch.empty(len(x), num_samples, z.shape[-1])
                    z_all[start:stop, s0:s0 + k] = z.transpose(0, 1).cpu()
    return ImportanceDraws(z_all, log_w, dims)


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
