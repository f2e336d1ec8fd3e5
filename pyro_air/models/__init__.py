"""Generative models (Pyro model functions as PyroModules) and their registry."""
from pyro_air.core.registry import Registry
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.bernoulli_vae import BernoulliVAE
from pyro_air.models.biased_noise import BiasedNoiseModel
from pyro_air.models.continuous_bernoulli_vae import ContinuousBernoulliVAE
from pyro_air.models.conv_vae import ConvBernoulliVAE, ConvContinuousBernoulliVAE, ConvGaussianVAE
from pyro_air.models.energies import EnergyModel
from pyro_air.models.gaussian_mlp_vae import GaussianMLPVAE
from pyro_air.models.linear_gaussian import LinearGaussianModel
from pyro_air.models.pixelcnn_vae import GatedPixelCNN, PixelCNNImage, PixelCNNVAE

MODELS = Registry("model")
MODELS.register("bernoulli-vae")(BernoulliVAE)
MODELS.register("linear-gaussian")(LinearGaussianModel)
MODELS.register("energy")(EnergyModel)
MODELS.register("gaussian-mlp-vae")(GaussianMLPVAE)
MODELS.register("biased-noise")(BiasedNoiseModel)
MODELS.register("pixelcnn-vae")(PixelCNNVAE)
MODELS.register("continuous-bernoulli-vae")(ContinuousBernoulliVAE)
MODELS.register("conv-bernoulli-vae")(ConvBernoulliVAE)
MODELS.register("conv-continuous-bernoulli-vae")(ConvContinuousBernoulliVAE)
MODELS.register("conv-gaussian-vae")(ConvGaussianVAE)


def build(name: str, **cfg) -> LatentVariableModel:
    """Build a model by its registry name, e.g. ``build("bernoulli-vae", z_dim=50)``."""
    return MODELS.build(name, **cfg)


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
