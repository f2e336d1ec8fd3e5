"""Log-likelihood estimates per datapoint.

- ``log_likelihood``: the IWAE-S estimate  log (1/S) sum_s p(x, z_s) / q(z_s | x),  z_s ~ q(z|x)
  (Burda et al. 2016; AIR paper Eq. 20 / Appendix C Eq. 40). It is a stochastic lower bound of
  log p(x) that tightens as S grows; with the exact posterior as guide it is exact.
- ``elbo``: the amortized ELBO  (1/S) sum_s log p(x, z_s) / q(z_s | x)  (AIR Eq. 5).

Both return Tensor[N], computed in chunks of datapoints and of samples so that memory does not
grow with ``num_samples``; both work for any model/guide pair that follows docs/design.md, contract 1,
PyroModules or plain Pyro functions ``model(x)`` / ``guide(x)`` (the log-weight primitive needs no
parameters; a function's batches stay on x's device).

Chunks. ``chunk_size`` given: that many samples per datapoint are drawn and scored at once. By
default the samples are drawn in units of ``default_chunk_size`` (fixed: the draws, and so the
estimates, depend on it) and, on the direct path, scored several units at once, as many as
``pyro_air.core.kernels.chunk_elements`` allows; that choice moves the estimates at float rounding
only.

Reproducible and distributed evaluation. With ``seed=s`` the samples for datapoint batch i (rows
[i * batch_size, (i+1) * batch_size)) come from a stream seeded by ``derive_seed(s, i)``, the
caller's RNG left untouched; without it (default) they come from the caller's stream as before.
With ``distributed=True`` (inside an initialized ``torch.distributed`` group) rank r scores a
contiguous share of the batches and every rank returns the whole Tensor[N], gathered in dataset
order. Distributed evaluation is always seeded (``seed`` defaults to 0 there), so it returns the
same per-datapoint values as a single process called with the same ``seed`` and ``batch_size``.
"""
from __future__ import annotations

import torch

from pyro_air.core import parallel as dist_utils
from pyro_air.core.progress import tqdm
from pyro_air.core.seeds import derive_seed, seeded
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate.chunking import (
    batches,
    default_chunk_size,
    evaluation_mode,
    module_device,
    streaming_logmeanexp,
    units_per_chunk,
)
from pyro_air.infer.direct import can_compute_directly, direct_log_weight_chunks
from pyro_air.infer.log_weights import log_importance_weights


def _log_weight_chunks(model, guide, xb, num_samples, chunk_size, units=1):
    if can_compute_directly(model, guide):  # the traced path's log weights without traces
        yield from direct_log_weight_chunks(model, guide, xb, num_samples, chunk_size, units)
        return
    for start in range(0, num_samples, chunk_size):
        k = min(chunk_size, num_samples - start)
        yield log_importance_weights(model, guide, xb, num_particles=k).log_w


def _check_inputs_once(x, model, guide):
    """The per-call input checks are off inside ``evaluation_mode``; run them once on all of x."""
    for module in (model, guide):
        if getattr(module, "validate_inputs", False):
            module.validate(x)


def per_datapoint(model, guide, x, num_samples, chunk_size, batch_size, reduce, progress, desc,
                   seed=None, distributed=False):
    """Tensor[N]: ``reduce`` applied to the [k, B] log-weight chunks of each batch of datapoints
    (``log_likelihood`` reduces by a streaming log-mean-exp, ``elbo`` by a mean); the evaluators
    of this package share it. Inputs are checked once; seed and distributed: module docstring."""
    check_positive_int(num_samples, "num_samples")
    if x.dim() != 2:
        raise ValueError(f"x must have shape [N, D], got {list(x.shape)}")
    device = module_device(model, default=x.device)  # a plain-function model: where x is
    batch_size = batch_size or min(len(x), 100)
    chunk = chunk_size or default_chunk_size(num_samples, batch_size, x.shape[1])
    check_positive_int(chunk, "chunk_size")
    # a chunk_size given is what the caller's memory allows: drawn and scored at that size
    units = 1 if chunk_size else units_per_chunk(chunk, num_samples, batch_size, x.shape[1], device)
    _check_inputs_once(x, model, guide)
    indexed = list(enumerate(batches(len(x), batch_size)))
    if distributed:
        dist_utils.require_initialized("distributed evaluation")
        seed = 0 if seed is None else seed
        indexed = dist_utils.shard(indexed, dist_utils.rank(), dist_utils.world_size())
        progress = progress and dist_utils.is_main_process()
    parts = []
    with evaluation_mode(model, guide):
        for i, (start, stop) in tqdm(indexed, desc=desc, disable=not progress, leave=False):
            xb = x[start:stop].to(device, non_blocking=True)
            with seeded(None if seed is None else derive_seed(seed, i), device):
                parts.append(reduce(_log_weight_chunks(model, guide, xb, num_samples, chunk, units)).cpu())
    out = torch.cat(parts) if parts else torch.empty(0)
    return dist_utils.gather_in_order(out) if distributed else out


def log_likelihood(model, guide, x: torch.Tensor, num_samples: int = 5000, chunk_size: int | None = None,
                   batch_size: int | None = None, progress: bool = False, seed: int | None = None,
                   distributed: bool = False) -> torch.Tensor:
    """IWAE-``num_samples`` estimate of log p(x) per datapoint, Tensor[N] (seed, distributed: module docstring)."""
    return per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          streaming_logmeanexp, progress, f"log p(x), S={num_samples}", seed, distributed)


def _mean_of_chunks(chunks) -> torch.Tensor:
    total, count = None, 0
    for c in chunks:
        s = c.sum(0)
        total = s if total is None else total + s
        count += c.shape[0]
    return total / count


def elbo(model, guide, x: torch.Tensor, num_samples: int = 1, chunk_size: int | None = None,
         batch_size: int | None = None, progress: bool = False, seed: int | None = None,
         distributed: bool = False) -> torch.Tensor:
    """Monte Carlo ELBO per datapoint with ``num_samples`` draws, Tensor[N] (seed, distributed: module docstring)."""
    return per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          _mean_of_chunks, progress, f"ELBO, S={num_samples}", seed, distributed)
