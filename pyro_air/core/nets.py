"""Small network builders shared by models and guides."""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.core.kernels import tanh_kernel


class _TanhFromSigmoid(torch.autograd.Function):
    """y = tanh(x) computed as 2 sigmoid(2x) - 1; dy/dx = 1 - y^2 (torch's own tanh_backward kernel,
    which is itself differentiable, so double backward works)."""

    @staticmethod
    def forward(ctx, x):
        y = x.mul(2).sigmoid_().mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Module):
    """tanh, on the CPU through the identity tanh(x) = 2 sigmoid(2x) - 1 where that is faster.

    Which kernel runs is measured once per machine (``pyro_air.core.kernels.tanh_kernel``; override
    with ``PYRO_AIR_TANH=torch|sigmoid``). Why the identity can win: torch's CPU ``tanh`` kernel
    (1-ulp accurate) cost ~2.5 ns per element on one AMD EPYC while ``sigmoid`` cost ~0.4 ns; on an
    Intel Xeon with AVX-512/AMX the opposite held (torch.tanh 3.9x faster forward). Where it wins,
    on the [1330, 500] activations of an IWAE-5000 evaluation chunk the identity is ~3x cheaper forward (the decoder's two tanh layers were the
    largest cost after the GEMMs); on a batch-100 training step's [100, 500] it is about even
    forward+backward (benchmarks/RESULTS.md, "Kernel choices"). Price: absolute error
    <= 2e-7 against float64 tanh (torch.tanh: 3e-8), i.e. float32 rounding of a value in [-1, 1],
    below the rounding of the 500-term sums the next layer computes (tests/test_nets.py). Near 0
    the *relative* error grows (2 sigmoid(2x) - 1 cancels), which no layer downstream can see.
    On CUDA, where tanh is as cheap as any elementwise kernel, ``torch.tanh`` is used.
    Same parameters (none) and same state_dict as ``nn.Tanh``: checkpoints are unaffected.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or tanh_kernel() == "torch":
            return torch.tanh(x)
        return _TanhFromSigmoid.apply(x)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": Tanh, "softplus": nn.Softplus, "elu": nn.ELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


def mlp(sizes, act: str = "tanh", final_activation: bool = False, linear=nn.Linear) -> nn.Sequential:
    """Linear layers through ``sizes`` with an activation between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def softplus_scale(raw: torch.Tensor, min_scale: float = 1e-4) -> torch.Tensor:
    """A positive standard deviation from an unconstrained output."""
    return nn.functional.softplus(raw) + min_scale
