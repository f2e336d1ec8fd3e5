"""Micro-benchmarks of the three kernel choices pyro-air makes, each against torch's default, at
the shapes of the 784-500-500-50 VAE (interleaved; ratios mean something, absolute times do not):

- Adam: torch's default single-tensor CPU path vs the fused kernel (``pyro_air.train.make_adam``);
- tanh: ``torch.tanh`` vs ``pyro_air.backend.nets.Tanh`` (2 sigmoid(2x) - 1), forward and forward+backward;
- Bernoulli log-density: ``binary_cross_entropy_with_logits`` vs ``softplus(l) - x l``
  (``pyro_air.core.distributions.bernoulli_image_log_density``), forward and forward+backward.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from benchmarks.timing import interleave
from pyro_air.core.distributions import bernoulli_image_log_density
from pyro_air.backend.nets import Tanh


def _adam_cases(params):
    cases = {}
    for name, fused in (("default", None), ("fused", True)):
        copies = [p.detach().clone().requires_grad_() for p in params]
        for c, p in zip(copies, params):
            c.grad = torch.randn_like(p)
        cases[name] = torch.optim.Adam(copies, lr=1e-3, fused=fused).step
    return cases


def _elementwise_cases(fn_default, fn_ours, make_input, backward: bool):
    def run(fn):
        x = make_input()
        if backward:
            x.requires_grad_()
            return lambda: fn(x).sum().backward()
        return lambda: fn(x)
    return {"default": run(fn_default), "pyro-air": run(fn_ours)}


def kernel_rows(params, rounds: int) -> list:
    """Rows (kernel, shape, default ms, pyro-air ms, ratio)."""
    rows = []
    adam = interleave(_adam_cases(params), rounds, calls_per_block=10)
    rows.append(("Adam step, all parameters", f"{sum(p.numel() for p in params):,} values",
                 adam["default"].median, adam["fused"].median))
    tanh = Tanh()
    x_bin = (torch.rand(100, 784) < 0.3).float()
    for shape in ((100, 500), (1330, 500)):
        for backward in (False, True):
            t = interleave(_elementwise_cases(torch.tanh, tanh, lambda s=shape: torch.randn(*s), backward),
                           rounds, calls_per_block=10)
            rows.append(("tanh" + (" fwd+bwd" if backward else " fwd"), str(list(shape)),
                         t["default"].median, t["pyro-air"].median))
    for k in (1, 13):
        for backward in (False, True):
            t = interleave(_elementwise_cases(
                lambda l: -F.binary_cross_entropy_with_logits(l, x_bin.expand_as(l), reduction="none").sum(-1),
                lambda l: bernoulli_image_log_density(l, x_bin.expand_as(l)),
                lambda k=k: torch.randn(k, 100, 784) * 4, backward), rounds, calls_per_block=10)
            rows.append(("Bernoulli log-density" + (" fwd+bwd" if backward else " fwd"), str([k, 100, 784]),
                         t["default"].median, t["pyro-air"].median))
    return [(name, shape, 1e3 * a, 1e3 * b, b / a) for name, shape, a, b in rows]
