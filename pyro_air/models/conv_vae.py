"""VAEs with a convolutional decoder for images x [B, C * H * W] seen as [B, C, H, W].

``image_shape`` is (H, W) (one channel) or (C, H, W) (C channels, e.g. RGB; channel-first order,
``pyro_air.support.images``). The decoder mirrors ``ConvGaussianEncoder`` (``pyro_air.guides.conv``):
z -> fully connected layer of ``hidden`` units -> [C_L, h_L, w_L] -> transposed convolutions
(kernel 3, stride 2, padding 1; the output padding chosen per layer so every layer restores the
encoder's size at that depth exactly, h_{i-1} = ceil-halving inverted) -> C channels of logits
[B, C * H * W] (2C channels for the Gaussian: C of means, then C of raw scales). Any H x W works.

``ConvBernoulliVAE``: p(x | z) = Bernoulli(logits) (binary pixels), the same likelihood and direct
scoring as ``BernoulliVAE``; ``ConvContinuousBernoulliVAE``: the continuous Bernoulli for grey levels
(``ContinuousBernoulliVAE``); ``ConvGaussianVAE``: N(mu(z), diag sigma(z)^2) per value for real-valued
images (``GaussianMLPVAE``'s likelihood).
"""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.support.images import channels_height_width, image_shape_for
from pyro_air.backend.nets import activation as make_activation
from pyro_air.core.validation import check_hidden, check_positive_int
from pyro_air.models.bernoulli_vae import BernoulliVAE
from pyro_air.models.continuous_bernoulli_vae import ContinuousBernoulliVAE
from pyro_air.models.gaussian_mlp_vae import GaussianMLPVAE
from pyro_air.models.registry import MODELS


def _halved(n: int) -> int:
    return (n + 1) // 2  # a stride-2 convolution with kernel 3 and padding 1


class ConvDecoder(nn.Module):
    """z [..., z_dim] -> ``outputs`` values per image value [..., outputs * C * H * W] (module docstring)."""

    def __init__(self, z_dim: int, image_shape, channels=(16, 32), hidden: int = 256, activation: str = "relu",
                 outputs: int = 1):
        super().__init__()
        self.image_shape = tuple(image_shape)
        image_channels, height, width = channels_height_width(self.image_shape)
        self.out_channels = outputs * image_channels
        self.out_size = self.out_channels * height * width
        self.channels = check_hidden(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one convolution, e.g. channels=(16, 32)")
        sizes = [(height, width)]
        for _ in self.channels:
            sizes.append((_halved(sizes[-1][0]), _halved(sizes[-1][1])))
        self.start = (self.channels[-1], *sizes[-1])
        self.fc = nn.Sequential(nn.Linear(z_dim, check_positive_int(hidden, "hidden")), make_activation(activation),
                                nn.Linear(hidden, self.start[0] * self.start[1] * self.start[2]),
                                make_activation(activation))
        layers, depth = [], len(self.channels)
        for i in range(depth, 0, -1):  # from depth i to i - 1
            c_out = self.channels[i - 2] if i >= 2 else self.out_channels
            (h, w), (th, tw) = sizes[i], sizes[i - 1]
            layers.append(nn.ConvTranspose2d(self.channels[i - 1], c_out, 3, stride=2, padding=1,
                                             output_padding=(th - (2 * h - 1), tw - (2 * w - 1))))
            if i > 1:
                layers.append(make_activation(activation))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.fc(z).reshape(-1, *self.start)
        return self.deconvs(h).reshape(*lead, self.out_size)


@MODELS.register("conv-bernoulli-vae", likelihood="bernoulli", net="conv")
class ConvBernoulliVAE(BernoulliVAE):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu"):
        super().__init__(x_dim, z_dim, hidden=(1,), activation="tanh")  # the MLP is replaced just below
        self.hidden = check_positive_int(hidden, "hidden")
        self.image_shape = image_shape_for(self.x_dim, image_shape, channels=True)
        self.decoder = ConvDecoder(self.z_dim, self.image_shape, channels, hidden, activation)


@MODELS.register("conv-continuous-bernoulli-vae", likelihood="continuous-bernoulli", net="conv")
class ConvContinuousBernoulliVAE(ContinuousBernoulliVAE):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu"):
        super().__init__(x_dim, z_dim, hidden=(1,), activation="tanh")
        self.hidden = check_positive_int(hidden, "hidden")
        self.image_shape = image_shape_for(self.x_dim, image_shape, channels=True)
        self.decoder = ConvDecoder(self.z_dim, self.image_shape, channels, hidden, activation)


@MODELS.register("conv-gaussian-vae", likelihood="gaussian", net="conv")
class ConvGaussianVAE(GaussianMLPVAE):
    """p(x | z) = N(mu(z), diag sigma(z)^2) with mu and sigma from the convolutional decoder (real values)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu", min_scale: float = 1e-4):
        super().__init__(x_dim, z_dim, hidden=(1,), activation="tanh", min_scale=min_scale)
        self.hidden = check_positive_int(hidden, "hidden")
        self.image_shape = image_shape_for(self.x_dim, image_shape, channels=True)
        self.decoder = ConvDecoder(self.z_dim, self.image_shape, channels, hidden, activation, outputs=2)
