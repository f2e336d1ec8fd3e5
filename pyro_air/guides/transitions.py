"""Stochastic refinement operators of AVO (Huang et al. 2018, section 4.2).

Both the forward transitions q_t(z_t | z_{t-1}) and the reverse kernels r_t(z_{t-1} | z_t) are

    N(. ; mu(z), diag sigma(z)^2),
    mu(z)    = g(z) * m(z) + (1 - g(z)) * z                 (gated mean)
    sigma(z) = softplus(W_s h(z) + b_s) + 1e-6
    m(z) = W_m h(z) + b_m,   g(z) = sigmoid(W_g h(z) + b_g),   h(z) = act(W_h z [+ U_h c] + b_h)

with weight-normalized linear layers W = g_w v / ||v|| (Salimans & Kingma 2016). As in the
authors' code the gate bias starts at -1 (mean close to the identity) and the std bias at
log(e - 1) (std close to 1): the defaults. ``gate_bias`` and ``initial_std`` change them; a
near-identity start (gate bias -4, std 0.05) lets an HVI guide learn at the plain VAE's pace on
MNIST, where the authors' start leaves it 15-20 nats behind for the first epochs
(experiments/avo/transition_init.py). In the amortized case the hidden layer also sees the encoder's
features c(x) through an extra weight-normalized map U_h c - a simplification of the conditional
weight normalization of Krueger et al. (2017) that the paper uses.

All T operators of a chain live in one ``GatedGaussianTransitions`` module with stacked
parameters [T, ...]: a guide reads them once per call (``weights()``), which keeps Pyro's
per-parameter bookkeeping out of the inner loop.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.backend.nets import activation
from pyro_air.core.validation import check_positive, check_positive_int

MIN_STD = 1e-6


class StackedWeightNormLinear(nn.Module):
    """T independent layers y = (g_t / ||v_t||_row) (v_t x) + b_t, t = 0..T-1."""

    def __init__(self, num: int, n_in: int, n_out: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)  # nn.Linear's default initialization
        direction = torch.empty(num, n_out, n_in).uniform_(-bound, bound)
        self.direction = nn.Parameter(direction)
        self.log_gain = nn.Parameter(direction.norm(dim=-1).log().clone())
        self.bias = nn.Parameter(torch.empty(num, n_out).uniform_(-bound, bound)) if bias else None

    def weights(self):
        """(W [T, out, in], b [T, out] or None) with W_t = g_t v_t / ||v_t||."""
        v = self.direction
        w = self.log_gain.exp().unsqueeze(-1) * v / v.norm(dim=-1, keepdim=True)
        return w, self.bias


class GatedGaussianTransitions(nn.Module):
    """T conditional Gaussians N(mu_t(z, c), sigma_t(z, c)) with the gated mean of section 4.2."""

    def __init__(self, num: int, z_dim: int, hidden: int = 64, context_dim: int = 0, act: str = "relu",
                 gate_bias: float = -1.0, initial_std: float = 1.0):
        super().__init__()
        self.num = check_positive_int(num, "number of transitions", minimum=0)
        self.z_dim = check_positive_int(z_dim, "z_dim")
        self.hidden = check_positive_int(hidden, "transition hidden size")
        self.context_dim = check_positive_int(context_dim, "context_dim", minimum=0)
        self.act = activation(act)
        self.h_z = StackedWeightNormLinear(num, z_dim, hidden)
        self.h_c = StackedWeightNormLinear(num, context_dim, hidden, bias=False) if context_dim else None
        self.mean = StackedWeightNormLinear(num, hidden, z_dim)
        self.gate = StackedWeightNormLinear(num, hidden, z_dim)
        self.std = StackedWeightNormLinear(num, hidden, z_dim)
        initial_std = check_positive(initial_std, "initial_std")
        if not math.isfinite(float(gate_bias)):
            raise ValueError(f"gate_bias must be a finite number (the gate's starting logit), got {gate_bias!r}")
        with torch.no_grad():
            self.gate.bias.fill_(float(gate_bias))
            self.std.bias.fill_(math.log(math.expm1(initial_std)))  # softplus(bias) = initial_std (1: log(e - 1))

    def weights(self) -> dict:
        """Every layer's normalized weights, computed once for all T operators."""
        layers = {"h_z": self.h_z, "mean": self.mean, "gate": self.gate, "std": self.std}
        if self.h_c is not None:
            layers["h_c"] = self.h_c
        return {name: layer.weights() for name, layer in layers.items()}

    def precompute_context(self, weights: dict, context: torch.Tensor | None):
        """U_h,t c for every t (None without context): Tensor[T, B, hidden]."""
        if "h_c" not in weights:
            return None
        if context is None:
            raise ValueError("these transitions are conditioned on encoder features; pass the context")
        return torch.einsum("thc,bc->tbh", weights["h_c"][0], context)

    def distribution(self, weights: dict, t: int, z: torch.Tensor,
                     context_term: torch.Tensor | None = None) -> dist.Distribution:
        """Operator t applied to z (shape [..., B, z_dim]); returns a Normal with event dim 1."""
        def linear(name, inp):
            w, b = weights[name]
            return nn.functional.linear(inp, w[t], None if b is None else b[t])

        pre = linear("h_z", z)
        if context_term is not None:
            pre = pre + context_term[t]
        h = self.act(pre)
        g = torch.sigmoid(linear("gate", h))
        loc = g * linear("mean", h) + (1 - g) * z
        scale = nn.functional.softplus(linear("std", h)) + MIN_STD
        return dist.Normal(loc, scale, validate_args=False).to_event(1)
