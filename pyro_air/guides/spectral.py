"""The spectrally normalized encoder: Lipschitz control by the largest singular value of each layer.

Spectral normalization (Miyato, Kataoka, Koyama & Yoshida, ICLR 2018, Eq. 8) divides a weight
matrix by its largest singular value sigma(W), estimated by one power iteration per training step:

    W_SN = W / sigma(W),      sigma(W) = max_{||h|| = 1} ||W h||  (~ u^T W v after power iteration)

It is torch's own parametrization here (``torch.nn.utils.parametrizations.spectral_norm``). The AIR
paper (Shu et al. 2018, section 3.2) restricts the encoder to smooth maps by capping each *row*
norm of every layer (weight-normalized inference, Eq. 17-18); the spectral norm is the operator
norm itself, so capping it bounds the layer's Lipschitz constant directly. With a bound c per layer,

    "cap" (default; the analogue of WNI's min(||v_i||, H)):  W = W_SN * min(sigma(W), c)
    "normalize" (Miyato et al.):                             W = c * W_SN

so every layer has ||W||_2 <= c (up to the power iteration's estimate, which converges to sigma
from below) and, with 1-Lipschitz activations (tanh), the encoder's map x -> (mu, raw scale) is
c^L-Lipschitz for L layers. In "cap" mode a layer whose sigma is below c is the plain linear map
(float rounding aside), so ``bound=inf`` is the plain encoder; ``bound=None`` uses plain
``nn.Linear`` layers (bit for bit the ``GaussianEncoder``).

sigma is read off torch's parametrization as ||W||_F / ||W_SN||_F (public attributes only).
Direct scoring is the ``GaussianEncoder``'s (same ``loc_scale``, specialized formulas).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.registry import GUIDES

MODES = ("cap", "normalize")


def check_bound(bound) -> float:
    try:
        return check_positive(bound, "bound (the largest singular value allowed per layer)")
    except ValueError as err:
        raise ValueError(f"{err}; pick a positive bound such as bound=2 (smaller = smoother encoder), "
                         "or bound=None for plain linear layers") from None


class SpectralNormLinear(nn.Module):
    """y = x W^T + b with ||W||_2 <= ``bound`` (module docstring; ``mode`` "cap" or "normalize")."""

    def __init__(self, in_features: int, out_features: int, bound: float = 1.0, mode: str = "cap",
                 n_power_iterations: int = 1, bias: bool = True):
        super().__init__()
        self.bound = check_bound(bound)
        if mode not in MODES:
            raise ValueError(f"unknown spectral-norm mode {mode!r}; use 'cap' (min(sigma, bound)) or 'normalize' "
                             "(sigma = bound)")
        self.mode = mode
        check_positive_int(n_power_iterations, "n_power_iterations")
        self.linear = spectral_norm(nn.Linear(in_features, out_features, bias=bias),
                                    n_power_iterations=n_power_iterations)
        self.in_features, self.out_features = in_features, out_features

    def sigma(self, normalized: torch.Tensor | None = None) -> torch.Tensor:
        """The power-iteration estimate of sigma(W) for the unnormalized W (a 0-dim tensor)."""
        raw = self.linear.parametrizations.weight.original
        normalized = self.linear.weight if normalized is None else normalized
        return raw.norm() / normalized.norm()

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight matrix [out, in] (one power-iteration step in training mode)."""
        normalized = self.linear.weight
        if self.mode == "normalize":
            return normalized * self.bound
        if math.isinf(self.bound):
            return normalized * self.sigma(normalized)
        return normalized * torch.clamp(self.sigma(normalized), max=self.bound)

    @property
    def bias(self):
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.linear.bias)

    def largest_singular_value(self) -> float:
        """||W||_2 of the effective weight, computed exactly (SVD), without a power-iteration step."""
        with torch.no_grad(), parametrize.cached():
            training = self.training
            self.eval()
            try:
                return torch.linalg.matrix_norm(self.weight, ord=2).item()
            finally:
                self.train(training)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bound={self.bound}, mode={self.mode}"


@GUIDES.register("spectral-norm", hidden=True)
class SpectralNormEncoder(GaussianEncoder):
    """The Gaussian MLP encoder x-d-d-z with every linear layer (the head too) a ``SpectralNormLinear``
    with ``bound`` and ``mode``; ``bound=None`` gives plain ``nn.Linear`` layers."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), bound: float | None = 2.0,
                 mode: str = "cap", n_power_iterations: int = 1, activation: str = "tanh"):
        if bound is None:
            linear = nn.Linear
        else:
            bound = check_bound(bound)
            if mode not in MODES:
                raise ValueError(f"unknown spectral-norm mode {mode!r}; use one of {', '.join(MODES)}")
            linear = functools.partial(SpectralNormLinear, bound=bound, mode=mode,
                                       n_power_iterations=n_power_iterations)
        super().__init__(x_dim, z_dim, hidden, activation, linear=linear)
        self.bound, self.mode = bound, mode

    def largest_singular_values(self) -> list:
        """||W||_2 of every layer, input to output (exact, by SVD)."""
        return [m.largest_singular_value() if isinstance(m, SpectralNormLinear)
                else torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()
                for m in self.modules() if isinstance(m, (SpectralNormLinear, nn.Linear))
                and not isinstance(getattr(m, "parametrizations", None), nn.ModuleDict)]
