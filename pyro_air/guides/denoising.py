"""The denoising wrapper: any amortized encoder sees a noise-perturbed input while training.

Denoising VAE / IWAE (AIR paper, Shu et al. 2018, Eq. 13, 16 and 23). With the wrapped encoder f,
the training objective of one datapoint x becomes

    L_sigma(x) = E_eps[ E_{z ~ f(x + eps)} log p(x, z) / f(x + eps)(z) ],   eps ~ N(0, sigma^2 I)   (Eq. 13)

(IWAE-k: E_eps E_{z_1..k ~ f(x + eps)} log (1/k) sum_i p(x, z_i) / f(x + eps)(z_i), Eq. 23). Only the
encoder's *input* changes: the model always scores the clean x. For any eps this is a valid lower
bound of log p(x), and it lower-bounds the clean objective when f is optimal for clean inputs
(Proposition 1); the noise regularizes the encoder towards smooth maps x -> q(z | x) (Lemma 1).

How it is estimated. In training mode each datapoint b of a batch draws ONE eps_b ~ N(0, sigma^2 I)
(shape [B, D]) outside the particle plate, so all k importance samples of a datapoint share it, as
Eq. 23 requires (the bound is an expectation over eps of an importance-weighted bound under one eps).
Partial denoising (Eq. 16) is the convex combination alpha * L_sigma(x) + (1 - alpha) * L_0(x); it is
estimated without bias by drawing m_b ~ Bernoulli(alpha) per datapoint and feeding x_b + m_b eps_b:

    E_m E_eps[ L(f(x + m eps)) ] = alpha * E_eps[ L(f(x + eps)) ] + (1 - alpha) * L(f(x)).

In eval mode (``module.eval()``; ``pyro_air.evaluate`` switches to it) the encoder sees the clean x.

Direct scoring: ``direct_posterior`` draws the noise exactly where ``forward`` does (before the
wrapped encoder runs) and hands the noisy input to the wrapped encoder's own direct scoring, so the
wrapper keeps the fast path - and the specialized formulas - of whatever it wraps.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.core.validation import check_batch, check_positive, check_unit_interval
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.registry import GUIDES, build_encoder
from pyro_air.guides.weightnorm import WeightNormEncoder


class Denoising(AmortizedGuide):
    """Wrap ``encoder`` (any ``AmortizedGuide``) so that in training it sees x + m * eps (see module doc).

    ``sigma``: the noise standard deviation (>= 0; 0 gives exactly the wrapped encoder).
    ``alpha``: the weight of the noisy objective in Eq. 16, in [0, 1] (0 gives exactly the wrapped encoder).
    """

    def __init__(self, encoder: AmortizedGuide, sigma: float, alpha: float = 1.0):
        if not isinstance(encoder, AmortizedGuide):
            raise TypeError(
                f"Denoising wraps an AmortizedGuide (e.g. GaussianEncoder), got {type(encoder).__name__}; "
                "build the encoder first, e.g. Denoising(GaussianEncoder(784, 50), sigma=0.3)"
            )
        try:
            sigma = check_positive(sigma, "sigma (the denoising noise scale)", allow_zero=True)
        except ValueError as err:
            raise ValueError(f"{err}; pick a noise standard deviation such as sigma=0.3 (0 = no noise)") from None
        try:
            alpha = check_unit_interval(alpha, "alpha (the weight of the noisy objective, Eq. 16)")
        except (TypeError, ValueError) as err:
            raise ValueError(f"{err}; use alpha=1.0 for full denoising, 0.5 for half") from None
        if getattr(getattr(encoder, "_pyro_context", None), "used", False):
            raise ValueError(
                f"the {type(encoder).__name__} has already run on its own, so Pyro cannot rename its parameters "
                "under the wrapper; wrap the encoder before its first use: Denoising(encoder, sigma) first, then train"
            )
        super().__init__(encoder.x_dim, encoder.z_dim)
        self.encoder = encoder  # a submodule: its parameters are this guide's parameters
        self.sigma = sigma
        self.alpha = alpha

    @property
    def adds_noise(self) -> bool:
        return self.training and self.sigma > 0 and self.alpha > 0

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """x + m * eps in training mode (one eps and one m per datapoint), the clean x otherwise."""
        if not self.adds_noise:
            return x
        eps = torch.randn_like(x) * self.sigma  # [B, D]: shared by every particle of datapoint b
        if self.alpha < 1.0:
            mask = torch.bernoulli(x.new_full((x.shape[0], 1), self.alpha))  # m_b ~ Bernoulli(alpha)
            eps = eps * mask
        return x + eps

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q(z | encoder input x): the wrapped encoder's own input hook and posterior."""
        return self.encoder.posterior(self.encoder.encoder_input(x))

    def direct_posterior(self, x: torch.Tensor):
        """q(z | x + m eps) for the batch, through the wrapped encoder's direct scoring."""
        return self.encoder.direct_posterior(self.encoder_input(x))

    def supports_direct_scoring(self) -> bool:
        return super().supports_direct_scoring() and self.encoder.supports_direct_scoring()

    def forward(self, x: torch.Tensor, num_data: int | None = None):
        # Delegate to the wrapped guide's forward, so guides with their own forward (several latent
        # sites, auxiliary variables) are wrapped too; only what their encoder sees changes.
        if self.validate_inputs:
            check_batch(x, self.x_dim, type(self).__name__)
        return self.encoder(self.encoder_input(x), num_data=num_data)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, alpha={self.alpha}"


@GUIDES.register("denoising", wraps="gaussian")
def denoising(sigma: float, alpha: float = 1.0, encoder="gaussian", **encoder_cfg) -> Denoising:
    """Registry builder: ``encoder`` is a guide name (``encoder_cfg`` are its options), a
    ``{"name": ..., "cfg": {...}}`` dict, or an ``AmortizedGuide`` instance (``build_encoder``)."""
    return Denoising(build_encoder(encoder, encoder_cfg), sigma=sigma, alpha=alpha)


@GUIDES.register("denoising-weightnorm", hidden=True)
def denoising_weightnorm(x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), sigma: float = 0.25,
                         H: float = 5.0, alpha: float = 1.0, activation: str = "tanh") -> Denoising:
    """Denoising (AIR Eq. 13/16) around the weight-normalized encoder (Eq. 17-18): both AIR
    regularizers at once, a combination the AIR paper did not run. sigma = 0 is the WNI encoder."""
    return Denoising(WeightNormEncoder(x_dim, z_dim, hidden, H, activation), sigma=sigma, alpha=alpha)
