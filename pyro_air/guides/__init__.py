"""Guides (encoders) as PyroModules, swappable for any model with the same latent size."""
from pyro_air.core.registry import Registry
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.consistency import ConsistencyEncoder
from pyro_air.guides.conv import ConvGaussianEncoder, committed_rate_max_scale
from pyro_air.guides.denoising import Denoising
from pyro_air.guides.exact import ExactPosteriorGuide
from pyro_air.guides.flow import IAFGuide
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.hierarchical import ExtendedModel, HierarchicalGuide
from pyro_air.guides.large import LargeGaussianEncoder
from pyro_air.guides.semi_amortized import SemiAmortized
from pyro_air.guides.spectral import SpectralNormEncoder, SpectralNormLinear
from pyro_air.guides.weightnorm import WeightNormEncoder, WeightNormLinear

GUIDES = Registry("guide")
GUIDES.register("gaussian")(GaussianEncoder)
GUIDES.register("gaussian-large")(LargeGaussianEncoder)
GUIDES.register("denoising")(Denoising.from_config)
GUIDES.register("weightnorm")(WeightNormEncoder)
GUIDES.register("hierarchical")(HierarchicalGuide)
GUIDES.register("iaf")(IAFGuide)
GUIDES.register("consistency")(ConsistencyEncoder.from_config)
GUIDES.register("semi-amortized")(SemiAmortized.from_config)
GUIDES.register("spectral-norm")(SpectralNormEncoder)


@GUIDES.register("denoising-weightnorm")
def denoising_weightnorm(x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), sigma: float = 0.25,
                         H: float = 5.0, alpha: float = 1.0, activation: str = "tanh") -> Denoising:
    """Denoising (AIR Eq. 13/16) around the weight-normalized encoder (Eq. 17-18): both AIR
    regularizers at once, a combination the AIR paper did not run. sigma = 0 is the WNI encoder."""
    return Denoising(WeightNormEncoder(x_dim, z_dim, hidden, H, activation), sigma=sigma, alpha=alpha)
GUIDES.register("conv-gaussian")(ConvGaussianEncoder)


def build(name: str, **cfg) -> AmortizedGuide:
    """Build a guide by its registry name, e.g. ``build("gaussian", z_dim=50)``."""
    return GUIDES.build(name, **cfg)


__all__ = [
    "GUIDES",
    "AmortizedGuide",
    "ConsistencyEncoder",
    "ConvGaussianEncoder",
    "Denoising",
    "ExactPosteriorGuide",
    "ExtendedModel",
    "GaussianEncoder",
    "HierarchicalGuide",
    "IAFGuide",
    "LargeGaussianEncoder",
    "SemiAmortized",
    "SpectralNormEncoder",
    "SpectralNormLinear",
    "WeightNormEncoder",
    "WeightNormLinear",
    "build",
    "denoising_weightnorm",
    "committed_rate_max_scale",
]
