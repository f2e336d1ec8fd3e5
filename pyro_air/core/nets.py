"""Small network builders shared by models and guides."""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.core.kernels import linear_kernel, tanh_kernel
from pyro_air.core.onednn import onednn_linear, onednn_linear_with_grad


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
GATED = "gated"  # not an elementwise activation: ``mlp`` builds GatedDense layers for it


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        extra = f" ({GATED!r} names gated dense layers: pass it to mlp, not here)" if name == GATED else ""
        raise ValueError(f"unknown activation {name!r}; use one of {', '.join(sorted(ACTIVATIONS))}{extra}")
    return ACTIVATIONS[name]()


class GatedDense(nn.Module):
    """A gated dense layer (Dauphin et al. 2017, Eq. 1; Tomczak & Welling 2018, the VampPrior's MLPs):

        h(x) = (W x + b) * sigmoid(V x + c)

    with no further activation. W and V are the two halves of one ``linear(n_in, 2 n_out)`` (one
    product instead of two; each half is initialized as ``linear(n_in, n_out)`` would be, since
    ``nn.Linear``'s initialization depends on fan-in only)."""

    def __init__(self, n_in: int, n_out: int, linear=nn.Linear):
        super().__init__()
        self.linear = linear(n_in, 2 * n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.linear(x).chunk(2, dim=-1)
        return h * torch.sigmoid(g)


class MLP(nn.Sequential):
    """Dense layers and activations in sequence: an ``nn.Sequential`` (same modules, same state_dict).

    Where the kernel measurement chose oneDNN for dense layers on this CPU
    (``pyro_air.core.kernels.linear_kernel``), every float32 ``nn.Linear`` runs through it, with a
    following ``Tanh`` fused into the product (``pyro_air.core.onednn``; with gradients the input
    gradient also goes through oneDNN): the same function to float rounding. Otherwise, with
    gradients on the layers run one by one; without gradients (evaluation: ``log_likelihood`` sends
    [chunk x B, 500] activations through the decoder thousands of times) a plain ``nn.Linear``
    followed by ``Tanh`` runs as one product and two in-place passes (``linear_tanh_no_grad``)
    instead of a product and four passes, one of them into a fresh tensor: the same numbers bit for
    bit (tests/test_nets.py). Off the CPU, under autocast and inside ``torch.compile`` the layers
    always run one by one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
            return super().forward(x)  # checked first: the kernel choice is not traced (graph break)
        grad = torch.is_grad_enabled()
        onednn = x.dtype == torch.float32 and linear_kernel(training=grad) == "onednn"
        if grad and not onednn:
            return super().forward(x)
        layers, i = list(self), 0
        while i < len(layers):
            layer, follower = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            foldable = type(layer) is nn.Linear and (x.dim() == 2 or x.dim() > 2 and x.is_contiguous())
            if foldable and onednn and layer.weight.dtype == torch.float32 and layer.weight.is_contiguous():
                tanh = type(follower) is Tanh
                linear = onednn_linear_with_grad if grad else onednn_linear
                x = linear(x, layer.weight, layer.bias, "tanh" if tanh else "none")
                i += 2 if tanh else 1
            elif foldable and not grad and layer.bias is not None and type(follower) is Tanh:
                x = linear_tanh_no_grad(x, layer.weight, layer.bias)
                i += 2
            else:
                x = layer(x)
                i += 1
        return x


_MINUS_ONE = torch.tensor(-1.0)


def linear_tanh_no_grad(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """tanh(h W^T + b) without autograd, bit for bit what ``nn.Linear`` then ``Tanh`` give.

    With the sigmoid kernel, tanh(a) = 2 sigmoid(2a) - 1 where the layer-by-layer path forms 2a in
    a pass of its own; here the product itself returns 2a = 2(b + hW^T) (``addmm`` with alpha =
    beta = 2: scaling by 2 is exact in floating point wherever the GEMM applies it), then
    ``sigmoid_`` and 2s - 1 (one ``add`` with alpha = 2, exact for the same reason) run in place.
    Two elementwise passes instead of four and no new tensor: on the [1330, 500] activations of an
    IWAE-5000 chunk ~0.18 ms of ~0.41 ms per layer (2-core AMD EPYC, 2 threads). With torch's
    tanh kernel, ``tanh_`` in place. Leading dimensions are folded into rows as ``nn.Linear`` does
    for a contiguous input (one ``addmm``, the same GEMM)."""
    rows = h.reshape(-1, h.shape[-1])
    if tanh_kernel() == "sigmoid":
        y = torch.addmm(bias, rows, weight.t(), beta=2, alpha=2).sigmoid_()
        y = torch.add(_MINUS_ONE, y, alpha=2, out=y)
    else:
        y = torch.addmm(bias, rows, weight.t()).tanh_()
    return y.view(*h.shape[:-1], weight.shape[0])


def mlp(sizes, act: str = "tanh", final_activation: bool = False, linear=nn.Linear) -> MLP:
    """Linear layers through ``sizes`` with an activation between them; ``act="gated"``: every layer
    that would be followed by an activation is a ``GatedDense`` layer instead (the last layer of a
    decoder stays a plain ``linear``)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2 or final_activation
        if hidden and act == GATED:
            layers.append(GatedDense(n_in, n_out, linear=linear))
            continue
        layers.append(linear(n_in, n_out))
        if hidden:
            layers.append(activation(act))
    return MLP(*layers)


def softplus_scale(raw: torch.Tensor, min_scale: float = 1e-4) -> torch.Tensor:
    """A positive standard deviation from an unconstrained output."""
    return nn.functional.softplus(raw) + min_scale
