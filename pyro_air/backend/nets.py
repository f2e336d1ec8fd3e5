"""Small network builders shared by models and guides: dense layers that run through the kernels this
machine chose (``pyro_air.backend.tanh``, ``pyro_air.backend.onednn``)."""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.backend.onednn import linear_kernel, onednn_linear, onednn_linear_with_grad
from pyro_air.backend.tanh import Tanh, linear_tanh_no_grad


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
    (``pyro_air.backend.onednn.linear_kernel``), every float32 ``nn.Linear`` runs through it, with a
    following ``Tanh`` fused into the product (``pyro_air.backend.onednn``; with gradients the input
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
