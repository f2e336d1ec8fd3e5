"""Upper bounds of log p(x) per datapoint, to sandwich it with the IWAE lower bound:

- ``method="cubo"``: CUBO_n = (1/n) log E_q[w^n], n > 1 (Dieng et al. 2017; review section 6.1);
- ``method="vr"``:   L_alpha = 1/(1 - alpha) log E_q[w^(1 - alpha)], alpha < 0 (review Eq. 29),
  which is CUBO_n at n = 1 - alpha.

Both are estimated as (1/r) log (1/S) sum_s w_s^r, r = n or 1 - alpha, z_s ~ q(z | x), streamed
over chunks of samples. The estimate is biased *down* (the log of an average; Jensen), so it
upper-bounds log p(x) only when S is large enough for E_q[w^r] to be well estimated, which needs
q to cover the posterior's tails (E_q[w^(2r)] finite). Read a value below the IWAE estimate as a
sign of that failure, not as a tighter bound.
"""
from __future__ import annotations

import torch

from pyro_air.evaluate.chunking import streaming_logmeanexp
from pyro_air.evaluate.log_likelihood import per_datapoint

METHODS = ("cubo", "vr")


def upper_bound(model, guide, x, method: str = "cubo", n: float = 2.0, alpha: float = -1.0,
                num_samples: int = 5000, chunk_size: int | None = None, batch_size: int | None = None,
                progress: bool = False, seed: int | None = None, distributed: bool = False,
                model_kwargs: dict | None = None, data_plate: str | None = None) -> torch.Tensor:
    """CUBO_n or VR-alpha (alpha < 0) estimate per datapoint, Tensor[N] (x, seed, distributed: as
    ``log_likelihood``). A model with global latent sites is refused: an upper bound has no
    per-datapoint form over them."""
    if method == "cubo":
        if not float(n) > 1.0:
            raise ValueError(f"CUBO_n is an upper bound only for n > 1, got n={n!r}")
        r = float(n)
    elif method == "vr":
        if not float(alpha) < 0.0:
            raise ValueError(f"the VR bound is above log p(x) only for alpha < 0, got alpha={alpha!r}")
        r = 1.0 - float(alpha)
    else:
        raise ValueError(f"unknown upper-bound method {method!r}; choose one of {', '.join(METHODS)}")

    def reduce(chunks):
        return streaming_logmeanexp(r * c for c in chunks) / r

    return per_datapoint(model, guide, x, num_samples, chunk_size, batch_size, reduce, progress,
                          f"{method} upper bound, S={num_samples}", seed, distributed, model_kwargs, data_plate,
                          refuse_globals="an upper bound has no per-datapoint form over global latents")
