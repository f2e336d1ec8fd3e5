"""Log-likelihood estimates per datapoint.

- ``log_likelihood``: the IWAE-S estimate  log (1/S) sum_s p(x, z_s) / q(z_s | x),  z_s ~ q(z|x)
  (Burda et al. 2016; AIR paper Eq. 20 / Appendix C Eq. 40). It is a stochastic lower bound of
  log p(x) that tightens as S grows; with the exact posterior as guide it is exact.
- ``elbo``: the amortized ELBO  (1/S) sum_s log p(x, z_s) / q(z_s | x)  (AIR Eq. 5).

Both return Tensor[N], computed in chunks of datapoints and of samples so that memory does not
grow with ``num_samples``; both work for any model/guide pair that follows DESIGN.md contract 1.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pyro_air.evaluate.chunking import (
    batches,
    default_chunk_size,
    evaluation_mode,
    module_device,
    streaming_logmeanexp,
)
from pyro_air.infer.direct import can_compute_directly, direct_log_weights
from pyro_air.infer.log_weights import log_importance_weights
from pyro_air.validation import check_positive_int


def _log_weight_chunks(model, guide, xb, num_samples, chunk_size):
    direct = can_compute_directly(model, guide)  # bit-identical log weights without traces
    for start in range(0, num_samples, chunk_size):
        k = min(chunk_size, num_samples - start)
        if direct:
            yield direct_log_weights(model, guide, xb, k).log_w
        else:
            yield log_importance_weights(model, guide, xb, num_particles=k).log_w


def _check_inputs_once(x, model, guide):
    """The per-call input checks are off inside ``evaluation_mode``; run them once on all of x."""
    for module in (model, guide):
        if getattr(module, "validate_inputs", False):
            module.validate(x)


def _per_datapoint(model, guide, x, num_samples, chunk_size, batch_size, reduce, progress, desc):
    check_positive_int(num_samples, "num_samples")
    if x.dim() != 2:
        raise ValueError(f"x must have shape [N, D], got {list(x.shape)}")
    device = module_device(model)
    batch_size = batch_size or min(len(x), 100)
    chunk = chunk_size or default_chunk_size(num_samples, batch_size, x.shape[1])
    check_positive_int(chunk, "chunk_size")
    _check_inputs_once(x, model, guide)
    out = torch.empty(len(x))
    ranges = list(batches(len(x), batch_size))
    with evaluation_mode(model, guide):
        for start, stop in tqdm(ranges, desc=desc, disable=not progress, leave=False):
            xb = x[start:stop].to(device, non_blocking=True)
            out[start:stop] = reduce(_log_weight_chunks(model, guide, xb, num_samples, chunk)).cpu()
    return out


def log_likelihood(model, guide, x: torch.Tensor, num_samples: int = 5000, chunk_size: int | None = None,
                   batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """IWAE-``num_samples`` estimate of log p(x) per datapoint, Tensor[N]."""
    return _per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          streaming_logmeanexp, progress, f"log p(x), S={num_samples}")


def _mean_of_chunks(chunks) -> torch.Tensor:
    total, count = None, 0
    for c in chunks:
        s = c.sum(0)
        total = s if total is None else total + s
        count += c.shape[0]
    return total / count


def elbo(model, guide, x: torch.Tensor, num_samples: int = 1, chunk_size: int | None = None,
         batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Monte Carlo ELBO per datapoint with ``num_samples`` draws, Tensor[N]."""
    return _per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          _mean_of_chunks, progress, f"ELBO, S={num_samples}")
