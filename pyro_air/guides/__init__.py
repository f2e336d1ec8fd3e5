"""Guides (encoders) as PyroModules, swappable for any model with the same latent size."""
from pyro_air.core.registry import Registry
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.conv import ConvGaussianEncoder, committed_rate_max_scale
from pyro_air.guides.denoising import Denoising
from pyro_air.guides.exact import ExactPosteriorGuide
from pyro_air.guides.flow import IAFGuide
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.hierarchical import ExtendedModel, HierarchicalGuide
from pyro_air.guides.large import LargeGaussianEncoder
from pyro_air.guides.weightnorm import WeightNormEncoder, WeightNormLinear

GUIDES = Registry("guide")
GUIDES.register("gaussian")(GaussianEncoder)
GUIDES.register("gaussian-large")(LargeGaussianEncoder)
GUIDES.register("denoising")(Denoising.from_config)
GUIDES.register("weightnorm")(WeightNormEncoder)
GUIDES.register("hierarchical")(HierarchicalGuide)
GUIDES.register("iaf")(IAFGuide)
GUIDES.register("conv-gaussian")(ConvGaussianEncoder)


def build(name: str, **cfg) -> AmortizedGuide:
    """Build a guide by its registry name, e.g. ``build("gaussian", z_dim=50)``."""
    return GUIDES.build(name, **cfg)


__all__ = [
    "GUIDES",
    "AmortizedGuide",
    "ConvGaussianEncoder",
    "Denoising",
    "ExactPosteriorGuide",
    "ExtendedModel",
    "GaussianEncoder",
    "HierarchicalGuide",
    "IAFGuide",
    "LargeGaussianEncoder",
    "WeightNormEncoder",
    "WeightNormLinear",
    "build",
    "committed_rate_max_scale",
]
