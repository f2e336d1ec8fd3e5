"""The fast path of the log-weight primitive: the same [K, B] log weights without Pyro's tracing.

For a model and a guide that implement the direct-scoring protocol (``pyro_air.core.protocols``;
the base classes do, by default through the same distributions their ``forward`` uses) the traced
computation of ``log_importance_weights`` reduces to

    q = guide.direct_posterior(x);   z = q.rsample(K)                        [K, B, z]
    log w[k, b] = model.log_joint(x, z)[k, b] - q.log_prob(z)[k, b],   scale = N / B

with the same random draws in the same order and the same order of additions, so the numbers are
bit-identical (``tests/test_direct.py``) while the poutine handlers, the plates and the
``pyro.param`` statements that dominate the Python overhead of a training step are skipped
(``benchmarks/RESULTS.md``).

It is used only when nothing could observe the difference: no Pyro handler is active (so not
inside ``pyro.infer.SVI``, which collects parameters from the trace, nor under ``poutine.scale``
or any other effect), both sides say their direct methods reproduce their ``forward``
(``supports_direct_scoring``), and no module holds ``PyroSample`` attributes. Anything else
takes the traced path.
"""
from __future__ import annotations

import torch
from pyro.nn import PyroModule
from pyro.poutine.runtime import am_i_wrapped

from pyro_air.core.plates import data_size
from pyro_air.core.validation import input_checks_enabled
from pyro_air.infer.log_weights import LogWeights


def _has_random_attributes(module) -> bool:
    """Whether any PyroModule in the tree holds ``PyroSample`` attributes. Only PyroModules can hold
    them, so leaves that are plain ``nn.Module``s (Linear, Tanh, ...) are skipped: the walk runs on
    every training step and should not cost more than it must."""
    if isinstance(module, PyroModule) and module._pyro_samples:
        return True
    return any(_has_random_attributes(child) for child in module._modules.values()
               if child is not None and (isinstance(child, PyroModule) or child._modules))


def _supports(obj) -> bool:
    """Asked of the object's class, not the object: a wrapper that forwards attribute access to a
    model (KL warm-up's tempered model, say) runs its own ``__call__``, which direct scoring would
    skip, so only a class that itself implements the protocol qualifies."""
    supports = getattr(type(obj), "supports_direct_scoring", None)
    return supports is not None and supports(obj)


def can_compute_directly(model, guide) -> bool:
    """True when ``direct_log_weights`` gives exactly what the traced primitive gives."""
    return (not am_i_wrapped() and _supports(model) and _supports(guide)
            and not _has_random_attributes(model) and not _has_random_attributes(guide))


def direct_log_weights(model, guide, x: torch.Tensor, num_particles: int, num_data: int | None = None) -> LogWeights:
    """log w of shape [K, B] and the scale N / B, without traces (module docstring)."""
    size = data_size(x, num_data)
    # the input checks of the guide's and the model's forward, in that order
    if guide.validate_inputs and input_checks_enabled():
        guide.validate(x)
    if model.validate_inputs and input_checks_enabled():
        model.validate(x)
    q = guide.direct_posterior(x)
    return LogWeights(score_draws(model, q, x, num_particles), float(size) / x.shape[0], None, None)


def direct_log_weight_chunks(model, guide, x: torch.Tensor, num_samples: int, chunk_size: int, units: int = 1):
    """The [k, B] log weights of ``num_samples`` samples per datapoint for evaluation (inputs already
    checked, no gradients): drawn ``chunk_size`` at a time, scored ``units`` draws at a time.

    The guide's q(z | x) is computed once for all chunks: for the deterministic encoders this path
    serves (eval mode) every chunk gets the same q the traced path would recompute, and the random
    stream is consumed by the z draws alone, so the numbers are the same (tests/test_direct.py); the
    encoder no longer costs once per chunk (docs/performance.md, "Measurements behind the code",
    "Evaluation chunk size"). Each unit's log q is taken at its own draw and the model scores the
    ``units`` draws together: with ``units`` > 1 the draws are the same, the model's products run on
    more rows (faster, and equal to scoring the units one by one up to float rounding;
    ``pyro_air.backend.onednn.chunk_elements``)."""
    q = guide.direct_posterior(x)
    for start in range(0, num_samples, chunk_size * units):
        stop = min(num_samples, start + chunk_size * units)
        draws, log_q = [], []
        for unit_start in range(start, stop, chunk_size):
            z = q.rsample(min(chunk_size, stop - unit_start))
            draws.append(z)
            log_q.append(q.log_prob(z))
        yield model.log_joint(x, torch.cat(draws)) - torch.cat(log_q)


def score_draws(model, q, x: torch.Tensor, num_particles: int) -> torch.Tensor:
    """log w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b) for K fresh draws z_kb ~ q(z | x_b).

    The model is scored before q, as the traced primitive scores the model's sites before the
    guide's: the autograd graph, and so the order in which backward accumulates gradients, is the
    same (the traced primitive starts its sums from zeros; 0 + a is a, bit for bit)."""
    z = q.rsample(num_particles)
    return model.log_joint(x, z) - q.log_prob(z)
