"""Generative models (Pyro model functions as PyroModules) and their registry.

Each model registers itself where it is defined (``pyro_air.models.registry``); this file only imports.
"""
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.bernoulli_vae import BernoulliVAE
from pyro_air.models.biased_noise import BiasedNoiseModel
from pyro_air.models.continuous_bernoulli_vae import ContinuousBernoulliVAE
from pyro_air.models.conv_vae import ConvBernoulliVAE, ConvContinuousBernoulliVAE, ConvGaussianVAE
from pyro_air.models.energies import EnergyModel
from pyro_air.models.gaussian_mlp_vae import GaussianMLPVAE
from pyro_air.models.linear_gaussian import LinearGaussianModel
from pyro_air.models.pixelcnn_vae import GatedPixelCNN, PixelCNNImage, PixelCNNVAE
from pyro_air.models.registry import MODELS, build

__all__ = [
    "MODELS",
    "BernoulliVAE",
    "BiasedNoiseModel",
    "ContinuousBernoulliVAE",
    "ConvBernoulliVAE",
    "ConvContinuousBernoulliVAE",
    "ConvGaussianVAE",
    "EnergyModel",
    "GatedPixelCNN",
    "GaussianMLPVAE",
    "LatentVariableModel",
    "LinearGaussianModel",
    "PixelCNNImage",
    "PixelCNNVAE",
    "build",
]
