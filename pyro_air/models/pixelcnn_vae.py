"""A VAE whose decoder is a small gated PixelCNN conditioned on z (the posterior-collapse set-up).

p(z) = N(0, I) and, for a binary image x of H x W pixels flattened in raster order to [H * W],

    log p(x | z) = sum_d log Bernoulli(x_d; sigmoid(l_d(x_<d, z)))
                 = sum_d [x_d l_d - softplus(l_d)]

where the logit l_d of pixel d sees only the pixels before it (rows above, and the pixels to its
left in its row) and z. The network is the gated PixelCNN of van den Oord, Kalchbrenner, Vinyals,
Espeholt, Graves & Kavukcuoglu 2016 ("Conditional Image Generation with PixelCNN Decoders",
section 2): a vertical stack (the rows above) and a horizontal stack (the row so far), which
together have no blind spot, with the gated activation of their Eq. 4, conditioned on z by a
location-independent bias per layer:

    y = tanh(W_f * v + V_f z) (.) sigmoid(W_g * v + V_g z)

How causality is kept (checked by perturbation in tests/test_pixelcnn_vae.py): a vertical
convolution of kernel (k//2 + 1, k), padded k//2 rows on top only, makes the vertical feature at
row i depend on input rows <= i; it enters the horizontal stack only shifted down by one row, so
through rows < i. A horizontal convolution of kernel (1, k//2 + 1), padded k//2 columns on the
left only, makes the feature at column j depend on its input at columns <= j; in the first layer
that input is the image shifted right by one column (columns < j: van den Oord's mask "A"), in
later layers it is the previous horizontal feature (mask "B"), which already excludes pixel d.
The horizontal stack has a residual connection after the first layer, and two 1x1 convolutions
with ReLU make the logits.

The likelihood is a distribution object (``PixelCNNImage``) whose ``log_prob(x)`` runs the network
on x itself, so ``forward``, the traced log-weight primitive and the default direct scoring of
``LatentVariableModel`` (docs/design.md, contract 6) all work unchanged; z of shape [K, B, z_dim]
scores the batch x [B, D] under K particles. ``sample`` draws pixel by pixel (H * W network
passes). Sizes: the defaults (16 channels, 4 gated layers, kernel 5, 36 k parameters with a
10-d latent) train at about 0.2 CPU-seconds per step of 50 MNIST images on one thread
(experiments/infovae/RESULTS.md, "Posterior collapse").
"""
from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from pyro_air.core.distributions import bernoulli_image_log_density
from pyro_air.support.images import image_shape_for
from pyro_air.core.validation import check_binary, check_positive_int
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS


class GatedLayer(nn.Module):
    """One layer of the vertical and horizontal stacks (module docstring)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        self.k, self.first = kernel_size, first
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (kernel_size // 2 + 1, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, kernel_size // 2 + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def gate(pre: torch.Tensor) -> torch.Tensor:
        f, g = pre.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, v, h, cond_v, cond_h):
        half = self.k // 2
        v_pre = self.vertical(F.pad(v, (half, half, half, 0))) + cond_v          # rows <= i
        h_in = F.pad(h, (1, -1, 0, 0)) if self.first else h                      # mask A: columns < j
        h_pre = (self.horizontal(F.pad(h_in, (half, 0, 0, 0)))                    # columns <= j of h_in
                 + self.vertical_to_horizontal(F.pad(v_pre, (0, 0, 1, -1)))      # rows < i
                 + cond_h)
        h_out = self.horizontal_out(self.gate(h_pre))
        return self.gate(v_pre), h_out if self.first else h + h_out


class GatedPixelCNN(nn.Module):
    """logits [N, H * W] of p(x_d | x_<d, z) for images x [N, H * W] and latents z [N, z_dim]."""

    def __init__(self, image_shape, z_dim: int, channels: int = 16, num_layers: int = 4, kernel_size: int = 5):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.channels = check_positive_int(channels, "channels")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (the vertical kernel is centred on the pixel), got {kernel_size}")
        self.layers = nn.ModuleList(
            GatedLayer(1 if i == 0 else channels, channels, kernel_size, first=i == 0) for i in range(num_layers))
        self.condition = nn.Linear(z_dim, num_layers * 4 * channels)   # V_f, V_g for both stacks, per layer
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        image = x.reshape(n, 1, *self.image_shape)
        cond = self.condition(z).reshape(n, self.num_layers, 4 * self.channels, 1, 1)
        v = h = image
        for i, layer in enumerate(self.layers):
            cond_v, cond_h = cond[:, i].chunk(2, dim=1)
            v, h = layer(v, h, cond_v, cond_h)
        return self.head(h).reshape(n, -1)


class PixelCNNImage(TorchDistribution):
    """p(x | z) of the gated PixelCNN: batch shape z.shape[:-1], event shape [H * W], binary x.

    ``log_prob(x)`` broadcasts x [..., D] against the batch shape and runs the network once on the
    flattened batch; ``sample`` draws the pixels in raster order, one network pass per pixel.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, network: GatedPixelCNN, z: torch.Tensor, validate_args=None):
        self.network, self.z = network, z
        d = network.image_shape[0] * network.image_shape[1]
        super().__init__(z.shape[:-1], torch.Size([d]), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return PixelCNNImage(self.network, self.z.expand(batch_shape + self.z.shape[-1:]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """l_d(x_<d, z) for every pixel, shape broadcast(x.shape[:-1], batch_shape) + [D]."""
        shape = torch.broadcast_shapes(x.shape[:-1], self.batch_shape)
        xs = x.expand(shape + x.shape[-1:]).reshape(-1, x.shape[-1])
        zs = self.z.expand(shape + self.z.shape[-1:]).reshape(-1, self.z.shape[-1])
        return self.network(xs, zs).reshape(shape + x.shape[-1:])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits = self.logits(value)
        return bernoulli_image_log_density(logits, value.expand_as(logits))

    def sample(self, sample_shape=()):
        shape = torch.Size(sample_shape) + self.batch_shape
        d = self.event_shape[0]
        zs = self.z.expand(shape + self.z.shape[-1:]).reshape(-1, self.z.shape[-1])
        with torch.no_grad():
            x = zs.new_zeros(len(zs), d)
            for i in range(d):                       # pixel i depends on pixels < i only
                p = torch.sigmoid(self.network(x, zs)[:, i])
                x[:, i] = torch.bernoulli(p)
        return x.reshape(shape + (d,))


@MODELS.register("pixelcnn-vae")
class PixelCNNVAE(LatentVariableModel):
    """p(z) = N(0, I), p(x | z) = gated PixelCNN conditioned on z (module docstring)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 10, image_shape=None, channels: int = 16,
                 num_layers: int = 4, kernel_size: int = 5):
        super().__init__(x_dim, z_dim)
        self.image_shape = image_shape_for(self.x_dim, image_shape)
        self.decoder = GatedPixelCNN(self.image_shape, self.z_dim, channels, num_layers, kernel_size)

    def validate(self, x: torch.Tensor) -> None:
        super().validate(x)
        check_binary(x, type(self).__name__)

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        return PixelCNNImage(self.decoder, z)

    def sample(self, num_samples: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """Binary images x ~ p(x | z), z ~ p(z) (or the given z [n, z_dim]); H * W network passes."""
        if z is None:
            p = next(self.parameters())
            z = torch.randn(num_samples, self.z_dim, device=p.device, dtype=p.dtype)
        return self.likelihood(z).sample()
