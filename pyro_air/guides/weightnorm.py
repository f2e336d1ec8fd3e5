"""Weight-normalized inference (WNI; AIR paper, Shu et al. 2018, Eq. 17-18).

Each output unit i of a linear layer has the weight vector (a row of the torch weight matrix)

    w_i = v_i / ||v_i|| * s_i,     s_i = min(||v_i||, H / (1 + exp(-u_i)))          (Eq. 17, 18)

with trainable v_i in R^d and u_i in R, so ||w_i|| = s_i <= H for any parameters: H caps how fast
the encoder's output can change with its input, which restricts the amortization family to smooth
maps (F_H; a smaller H is a stronger regularizer). Weight normalization itself is Salimans &
Kingma 2016; while ||v_i|| is below the cap, s_i = ||v_i|| and the layer is the plain linear map v
(``cap_binds`` says whether any row of an encoder is held at its cap).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.registry import GUIDES


def _check_cap(H) -> float:
    try:
        cap = check_positive(H, "H (the weight-norm cap of Eq. 18)")
    except ValueError as err:
        raise ValueError(f"{err}; pick a positive cap such as H=5 (smaller H = stronger regularization)") from None
    if math.isinf(cap):
        raise ValueError(f"H (the weight-norm cap of Eq. 18) must be finite, got {H!r}: an infinite cap is no cap; "
                         "use the plain encoder (guide 'gaussian') or a finite H such as H=5")
    return cap


class WeightNormLinear(nn.Module):
    """y = x W^T + b with rows w_i = v_i / ||v_i|| * min(||v_i||, H * sigmoid(u_i)) (Eq. 17-18)."""

    def __init__(self, in_features: int, out_features: int, H: float, bias: bool = True):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.H = _check_cap(H)
        plain = nn.Linear(in_features, out_features, bias=bias)  # nn.Linear's initialization for v, b
        self.v = nn.Parameter(plain.weight.detach().clone())
        self.u = nn.Parameter(torch.zeros(out_features))  # cap starts at H / 2
        self.bias = nn.Parameter(plain.bias.detach().clone()) if bias else None

    def row_scale(self) -> torch.Tensor:
        """s_i = min(||v_i||, H * sigmoid(u_i)) per output unit (Eq. 18)."""
        return torch.minimum(self.v.norm(dim=1), self.H * torch.sigmoid(self.u))

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight matrix [out, in]; every row norm is <= H."""
        norm = self.v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.v.dtype).tiny)
        return self.v / norm * self.row_scale().unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, H={self.H}"


@GUIDES.register("weightnorm", hidden=True)
class WeightNormEncoder(GaussianEncoder):
    """The Gaussian MLP encoder x-d-d-z with EVERY linear layer (the output head too) a
    ``WeightNormLinear`` with cap H: the WNI-VAE / WNI-IWAE encoder of AIR section 3.2."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), H: float = 5.0,
                 activation: str = "tanh"):
        H = _check_cap(H)
        super().__init__(x_dim, z_dim, hidden, activation, linear=functools.partial(WeightNormLinear, H=H))
        self.H = H

    def max_row_norm(self) -> float:
        """The largest ||w_i|| over every layer of the encoder (<= H by construction)."""
        norms = [m.weight.norm(dim=1).max().item() for m in self.modules() if isinstance(m, WeightNormLinear)]
        return max(norms) if norms else math.nan


def cap_binds(guide: nn.Module) -> bool:
    """Whether any row of a weight-normalized encoder is held at its cap: ||v_i|| > H sigmoid(u_i)
    (Eq. 18) for some row of some ``WeightNormLinear`` in ``guide``. False where no row is (the
    encoder is then the plain one up to float rounding: the cap does not regularize) or where
    ``guide`` has no such layer."""
    with torch.no_grad():
        return any(bool((m.H * torch.sigmoid(m.u) < m.v.norm(dim=1)).any())
                   for m in guide.modules() if isinstance(m, WeightNormLinear))
