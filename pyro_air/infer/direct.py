"""The fast path of the log-weight primitive: the same [K, B] log weights without Pyro's tracing.

For the standard pair - a model whose ``forward`` is ``LatentVariableModel.forward`` (sites
"z" ~ prior, "x" ~ likelihood(z)) and a guide whose ``forward`` is ``AmortizedGuide.forward``
(q = posterior(encoder_input(x)), site "z") - the traced computation of
``log_importance_weights`` reduces to

    z = q.expand([K, B]).rsample()                            (what pyro.sample does in the plates)
    log w[k, b] = log p(z_kb) + log p(x_b | z_kb) - log q(z_kb | x_b),   scale = N / B

Computed directly, with the same distributions, the same expansion, the same random draws and
the same order of additions, it gives bit-identical numbers (``tests/test_fast_path.py``) while
skipping the poutine handlers, the plates and the ``pyro.param`` statements that dominate the
Python overhead of a training step (``benchmarks/RESULTS.md``).

It is used only when nothing could observe the difference: no Pyro handler is active (so not
inside ``pyro.infer.SVI``, which collects parameters from the trace, nor under ``poutine.scale``
or any other effect), the model and guide do not override ``forward``, and no module holds
``PyroSample`` attributes. Anything else takes the traced path.
"""
from __future__ import annotations

import functools

import torch
from pyro.nn import PyroModule
from pyro.poutine.runtime import am_i_wrapped

from pyro_air.infer import fused
from pyro_air.infer.log_weights import LogWeights
from pyro_air.plates import data_size
from pyro_air.validation import input_checks_enabled


def _standard(obj, base_name: str) -> bool:
    return _standard_type(type(obj), base_name)


@functools.cache
def _standard_type(cls, base_name: str) -> bool:
    """Whether ``cls`` keeps the ``forward`` of pyro-air's base class ``base_name`` (cached per
    class: it is asked on every training step)."""
    base = next((c for c in cls.__mro__ if c.__name__ == base_name and c.__module__.startswith("pyro_air.")),
                None)
    return base is not None and cls.forward is base.forward


def _has_random_attributes(module) -> bool:
    """Whether any PyroModule in the tree holds ``PyroSample`` attributes. Only PyroModules can hold
    them, so leaves that are plain ``nn.Module``s (Linear, Tanh, ...) are skipped: the walk runs on
    every training step and should not cost more than it must."""
    if isinstance(module, PyroModule) and module._pyro_samples:
        return True
    return any(_has_random_attributes(child) for child in module._modules.values()
               if child is not None and (isinstance(child, PyroModule) or child._modules))


def can_compute_directly(model, guide) -> bool:
    """True when ``direct_log_weights`` gives exactly what the traced primitive gives."""
    return (not am_i_wrapped()
            and _standard(model, "LatentVariableModel") and _standard(guide, "AmortizedGuide")
            and not _has_random_attributes(model) and not _has_random_attributes(guide))


def direct_log_weights(model, guide, x: torch.Tensor, num_particles: int, num_data: int | None = None) -> LogWeights:
    """log w of shape [K, B] and the scale N / B, without traces (module docstring)."""
    batch_size = x.shape[0]
    size = data_size(x, num_data)
    # the guide, as AmortizedGuide.forward runs it
    if guide.validate_inputs and input_checks_enabled():
        guide.validate(x)
    if model.validate_inputs and input_checks_enabled():
        model.validate(x)
    q, score = _q_and_scorer(model, guide, x)
    return LogWeights(score(model, q, x, num_particles), float(size) / batch_size, None, None)


def direct_log_weight_chunks(model, guide, x: torch.Tensor, num_samples: int, chunk_size: int):
    """The [k, B] log weights of ``num_samples`` samples per datapoint, ``chunk_size`` at a time,
    for evaluation (inputs already checked, no gradients). The guide's q(z | x) is computed once
    for all chunks: for the deterministic encoders this path serves (eval mode) every chunk gets
    the same q the traced path would recompute, and the random stream is consumed by the z draws
    alone, so the numbers are the same (tests/test_fast_path.py); the encoder no longer costs
    once per chunk (with B = 100 images and 4 MiB chunks it was ~8% of IWAE-5000)."""
    q, score = _q_and_scorer(model, guide, x)
    for start in range(0, num_samples, chunk_size):
        yield score(model, q, x, min(chunk_size, num_samples - start))


def _q_and_scorer(model, guide, x: torch.Tensor):
    """q(z | x) for the batch and the function that scores K draws from it: the fused scorer's
    (loc, scale) where it applies (pyro_air.infer.fused), else the guide's distribution."""
    if fused.can_fuse(model, guide):
        return fused.fused_q(guide, x), fused.fused_log_weights
    return guide.posterior(guide.encoder_input(x)), _log_weights_given_q


def _log_weights_given_q(model, q, x: torch.Tensor, num_particles: int) -> torch.Tensor:
    """log w[k, b] = log p(z_kb) + log p(x_b | z_kb) - log q(z_kb | x_b), z_kb ~ q(z | x_b)."""
    batch_size = x.shape[0]
    q = q.expand(torch.Size([num_particles, batch_size]))
    z = q.rsample() if q.has_rsample else q.sample()
    # the model, as LatentVariableModel.forward runs it, replayed at z. Pyro's plates would expand
    # p(z) and p(x | z) to batch shape [K, B]; expanding only broadcasts parameters, and log_prob
    # at z / x broadcasts the same way, so the values are the same unexpanded
    prior = model.prior(batch_size, x)
    likelihood = model.likelihood(z)
    # scored after both runs, in trace order, as the traced primitive does: the autograd graph,
    # and so the order in which backward accumulates gradients, is the same
    # (the traced primitive starts its sum from zeros; 0 + a is a, bit for bit)
    return prior.log_prob(z) + likelihood.log_prob(x) - q.log_prob(z)
