"""The CPU tanh kernel: ``torch.tanh`` or the identity tanh(x) = 2 sigmoid(2x) - 1, chosen by
measurement on the machine that runs it (``pyro_air.backend.choices``), and the modules that use it.

The first use on a machine times both on an evaluation chunk's activations forward and a training
step's forward + backward (``measure_tanh``), and keeps the identity only if it takes less than
``MARGIN`` of ``torch.tanh``'s time. The two differ by <= 2e-7 per activation (tests/test_nets.py).
Override: ``PYRO_AIR_TANH=torch`` or ``=sigmoid`` (or ``set_tanh_kernel``).
"""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.backend.choices import CHOSEN, MARGIN, best_times, resolve_choice

TANH_KERNELS = ("torch", "sigmoid")
TANH_ENV = "PYRO_AIR_TANH"


def _tanh_identity(x: torch.Tensor) -> torch.Tensor:
    return x.mul(2).sigmoid_().mul_(2).sub_(1)


def measure_tanh(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of each kernel on an evaluation chunk's [1330, 500]
    activations forward plus a training step's [100, 500] forward and backward."""
    generator = torch.Generator().manual_seed(0)
    big = torch.randn(1330, 500, generator=generator)
    small = torch.randn(100, 500, generator=generator, requires_grad=True)

    def timed(fn):
        def run():
            fn(big)
            y = fn(small)
            torch.ops.aten.tanh_backward(torch.ones_like(y), y)
        return run
    return best_times({"torch": timed(torch.tanh), "sigmoid": timed(_tanh_identity)}, repeats)


def choose_tanh(times: dict) -> str:
    """The kernel to use given measured times: the identity only if it clearly wins."""
    return "sigmoid" if times["sigmoid"] < MARGIN * times["torch"] else "torch"


def set_tanh_kernel(name: str | None) -> None:
    """Force a kernel for this process (``None``: back to the environment / cache / measurement)."""
    if name is not None and name not in TANH_KERNELS:
        raise ValueError(f"unknown tanh kernel {name!r}; use one of {', '.join(TANH_KERNELS)}")
    CHOSEN.pop("tanh", None)
    if name is not None:
        CHOSEN["tanh"] = {"kernel": name, "source": "set_tanh_kernel"}


def tanh_kernel() -> str:
    """"torch" or "sigmoid": the CPU tanh kernel of this process (module docstring)."""
    return tanh_choice()["kernel"]


def tanh_choice() -> dict:
    """``tanh_kernel``'s answer with its source (and measured times)."""
    if "tanh" not in CHOSEN:
        CHOSEN["tanh"] = resolve_choice("tanh", "kernel", TANH_ENV, TANH_KERNELS, "tanh kernel",
                                        lambda: measure_tanh(), choose_tanh)
    return CHOSEN["tanh"]


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

    Which kernel runs is measured once per machine (``tanh_kernel``; override
    with ``PYRO_AIR_TANH=torch|sigmoid``). Why the identity can win: on some CPUs torch's ``tanh``
    kernel (1-ulp accurate) costs several times what ``sigmoid`` does, on others the opposite holds;
    where it wins it matters on an evaluation chunk's large activations (the decoder's tanh layers
    come right after the GEMMs in cost) and little in a batch-100 training step (the numbers:
    docs/performance.md, "Measurements behind the code", "Kernel choices"). Price: absolute error
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


_MINUS_ONE = torch.tensor(-1.0)


def linear_tanh_no_grad(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """tanh(h W^T + b) without autograd, bit for bit what ``nn.Linear`` then ``Tanh`` give.

    With the sigmoid kernel, tanh(a) = 2 sigmoid(2a) - 1 where the layer-by-layer path forms 2a in
    a pass of its own; here the product itself returns 2a = 2(b + hW^T) (``addmm`` with alpha =
    beta = 2: scaling by 2 is exact in floating point wherever the GEMM applies it), then
    ``sigmoid_`` and 2s - 1 (one ``add`` with alpha = 2, exact for the same reason) run in place.
    Two elementwise passes instead of four and no new tensor (what that saves per layer:
    docs/performance.md, "Measurements behind the code", "Kernel choices"). With torch's
    tanh kernel, ``tanh_`` in place. Leading dimensions are folded into rows as ``nn.Linear`` does
    for a contiguous input (one ``addmm``, the same GEMM)."""
    rows = h.reshape(-1, h.shape[-1])
    if tanh_kernel() == "sigmoid":
        y = torch.addmm(bias, rows, weight.t(), beta=2, alpha=2).sigmoid_()
        y = torch.add(_MINUS_ONE, y, alpha=2, out=y)
    else:
        y = torch.addmm(bias, rows, weight.t()).tanh_()
    return y.view(*h.shape[:-1], weight.shape[0])
