"""VAEs with a convolutional decoder for single-channel images x [B, H * W] seen as [B, 1, H, W].

The decoder mirrors ``ConvGaussianEncoder`` (``pyro_air.guides.conv``): z -> fully connected layer of
``hidden`` units -> [C_L, h_L, w_L] -> transposed convolutions (kernel 3, stride 2, padding 1; the
output padding chosen per layer so every layer restores the encoder's size at that depth exactly,
h_{i-1} = ceil-halving inverted) -> 1 channel of logits [B, H * W]. Any H x W works.

``ConvBernoulliVAE``: p(x | z) = Bernoulli(logits) (binary pixels), the same likelihood and direct
scoring as ``BernoulliVAE``; ``ConvContinuousBernoulliVAE``: the continuous Bernoulli for grey levels
(``ContinuousBernoulliVAE``).
"""
from __future__ import annotations

import torch
from torch import nn

from pyro_air.core.images import image_shape_for
from pyro_air.core.nets import activation as make_activation
from pyro_air.core.validation import check_hidden, check_positive_int
from pyro_air.models.bernoulli_vae import BernoulliVAE
from pyro_air.models.continuous_bernoulli_vae import ContinuousBernoulliVAE


def _halved(n: int) -> int:
    return (n + 1) // 2  # a stride-2 convolution with kernel 3 and padding 1


class ConvDecoder(nn.Module):
    """z [..., z_dim] -> logits [..., H * W] (module docstring)."""

    def __init__(self, z_dim: int, image_shape, channels=(16, 32), hidden: int = 256, activation: str = "relu"):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.channels = check_hidden(channels, "channels")
        if not self.channels:
            raise ValueError("channels must name at least one convolution, e.g. channels=(16, 32)")
        sizes = [self.image_shape]
        for _ in self.channels:
            sizes.append((_halved(sizes[-1][0]), _halved(sizes[-1][1])))
        self.start = (self.channels[-1], *sizes[-1])
        self.fc = nn.Sequential(nn.Linear(z_dim, check_positive_int(hidden, "hidden")), make_activation(activation),
                                nn.Linear(hidden, self.start[0] * self.start[1] * self.start[2]),
                                make_activation(activation))
        layers, depth = [], len(self.channels)
        for i in range(depth, 0, -1):  # from depth i to i - 1
            c_out = self.channels[i - 2] if i >= 2 else 1
            (h, w), (th, tw) = sizes[i], sizes[i - 1]
            layers.append(nn.ConvTranspose2d(self.channels[i - 1], c_out, 3, stride=2, padding=1,
                                             output_padding=(th - (2 * h - 1), tw - (2 * w - 1))))
            if i > 1:
                layers.append(make_activation(activation))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.fc(z).reshape(-1, *self.start)
        return self.deconvs(h).reshape(*lead, self.image_shape[0] * self.image_shape[1])


class ConvBernoulliVAE(BernoulliVAE):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu"):
        super().__init__(x_dim, z_dim, hidden=(1,), activation="tanh")  # the MLP is replaced just below
        self.hidden = check_positive_int(hidden, "hidden")
        self.image_shape = image_shape_for(self.x_dim, image_shape)
        self.decoder = ConvDecoder(self.z_dim, self.image_shape, channels, hidden, activation)


class ConvContinuousBernoulliVAE(ContinuousBernoulliVAE):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, image_shape=None, channels=(16, 32), hidden: int = 256,
                 activation: str = "relu"):
        super().__init__(x_dim, z_dim, hidden=(1,), activation="tanh")
        self.hidden = check_positive_int(hidden, "hidden")
        self.image_shape = image_shape_for(self.x_dim, image_shape)
        self.decoder = ConvDecoder(self.z_dim, self.image_shape, channels, hidden, activation)
