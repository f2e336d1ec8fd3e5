"""Guides (encoders) as PyroModules, swappable for any model with the same latent size.

Each guide registers itself where it is defined (``pyro_air.guides.registry``); this file only imports.
"""
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.consistency import ConsistencyEncoder
from pyro_air.guides.conv import ConvGaussianEncoder, committed_rate_max_scale
from pyro_air.guides.denoising import Denoising, denoising_weightnorm
from pyro_air.guides.exact import ExactPosteriorGuide
from pyro_air.guides.flow import IAFGuide
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.hierarchical import ExtendedModel, HierarchicalGuide
from pyro_air.guides.large import LargeGaussianEncoder
from pyro_air.guides.registry import GUIDES, build, build_encoder
from pyro_air.guides.semi_amortized import SemiAmortized
from pyro_air.guides.spectral import SpectralNormEncoder, SpectralNormLinear
from pyro_air.guides.weightnorm import WeightNormEncoder, WeightNormLinear

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
    "build_encoder",
    "denoising_weightnorm",
    "committed_rate_max_scale",
]
