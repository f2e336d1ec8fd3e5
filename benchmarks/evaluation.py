"""Log-likelihood evaluation cases: pyro-air's chunked IWAE-S, a per-datapoint peer loop, and the
GEMM-only bound, timed interleaved on blocks of the same test images.

FLOP count (documented in RESULTS.md). A dense layer y = W h + b with W of shape [out, in] costs
``in * out`` multiply-adds = ``2 * in * out`` FLOPs per row (the bias add, the activations and the
Bernoulli/Normal log densities are elementwise and not counted). The decoder z-h1-h2-x therefore
costs, per importance sample,

    F_dec = 2 * (z*h1 + h1*h2 + h2*x)   (= 2 * (50*500 + 500*500 + 500*784) = 1,334,000 for MNIST)

The encoder x-h1-h2-2z runs once per image per chunk of samples, a small addition we report but
do not count towards the bound. The GEMM bound runs just the decoder's three ``torch.nn.functional
.linear`` calls (with bias) on as many rows as the evaluation scores, in blocks of R rows, and gives
FLOP/s; the bound is the *best* FLOP/s over R = pyro-air's chunk rows ([chunk * B, in] x [in, out])
and R = 1024 and 4096 (so a chunk size that happened to slow the GEMMs down would not flatter
the fraction), each through torch's product and, where this torch build has it, through oneDNN
(which pyro-air's evaluation uses where it measured faster); the GEMM-bound throughput is
FLOP/s / (S * F_dec) images per second.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from benchmarks.handwritten import HandwrittenVAE
from pyro_air.evaluate import log_likelihood
from pyro_air.backend.onednn import onednn_available, onednn_linear
from pyro_air.evaluate.chunking import default_chunk_size, streaming_logmeanexp, units_per_chunk


def linear_layers(net):
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


def decoder_flops_per_sample(model) -> int:
    """2 * sum(in * out) over the decoder's dense layers (module docstring)."""
    return 2 * sum(m.in_features * m.out_features for m in linear_layers(model.decoder))


def scored_chunk(num_samples: int, block: int, x_dim: int, device) -> int:
    """Samples per datapoint that ``log_likelihood`` scores at once by default: whole draw units
    (``default_chunk_size``), as many as ``pyro_air.backend.onednn.chunk_elements`` allows."""
    unit = default_chunk_size(num_samples, block, x_dim)
    return min(num_samples, unit * units_per_chunk(unit, num_samples, block, x_dim, device))


class ImageBlocks:
    """Consecutive blocks of ``block`` images, cycling through ``images``: each call of a case scores
    the next block, so the interleaved cases all see the same images in the same order."""

    def __init__(self, images, block):
        self.images, self.block, self.position = images, block, 0

    def next_block(self):
        start = self.position % len(self.images)
        self.position += self.block
        return self.images[start:start + self.block]


class PyroAirEvaluation(ImageBlocks):
    """``pyro_air.evaluate.log_likelihood`` (IWAE-S, default chunking) on consecutive image blocks."""

    def __init__(self, model, guide, images, block, num_samples):
        super().__init__(images, block)
        self.model, self.guide, self.S = model, guide, num_samples

    def __call__(self):
        xb = self.next_block()
        return log_likelihood(self.model, self.guide, xb, num_samples=self.S, batch_size=self.block)


class HandwrittenEvaluation(ImageBlocks):
    """The same chunked IWAE-S with plain tensor code (``HandwrittenVAE.log_weights``), same scored
    chunk size and streaming log-mean-exp: what eager PyTorch itself costs, without Pyro."""

    def __init__(self, model, guide, images, block, num_samples, plain_torch=False):
        self.net = HandwrittenVAE.from_pyro_air(model, guide, plain_torch).to(images.device).eval()
        super().__init__(images, block)
        self.S = num_samples
        self.chunk = scored_chunk(num_samples, block, images.shape[1], images.device)

    @torch.no_grad()
    def __call__(self):
        xb = self.next_block()
        chunks = (self.net.log_weights(xb, min(self.chunk, self.S - s)) for s in range(0, self.S, self.chunk))
        return streaming_logmeanexp(chunks)


class PerDatapointPeer(ImageBlocks):
    """The strategy of pythae's ``get_nll``: one image at a time; for each of S / 100 sample
    batches, repeat the image 100 times, encode the copies, draw z, decode, score; then
    log-mean-exp over the S weights and ``.item()`` per image. Same weights (a plain-torch copy)."""

    SAMPLE_BATCH = 100

    def __init__(self, model, guide, images, block, num_samples):
        self.net = HandwrittenVAE.from_pyro_air(model, guide).to(images.device).eval()
        super().__init__(images, block)
        self.S = num_samples

    @torch.no_grad()
    def log_px(self, x):
        log_w = []
        for _ in range(max(1, self.S // self.SAMPLE_BATCH)):
            x_rep = x.expand(self.SAMPLE_BATCH, -1).contiguous()
            log_w.append(self.net.log_weights(x_rep, 1)[0])
        log_w = torch.cat(log_w)
        return (torch.logsumexp(log_w, 0) - math.log(len(log_w))).item()

    def __call__(self):
        xb = self.next_block()
        return [self.log_px(x.unsqueeze(0)) for x in xb]


def pythae_available() -> bool:
    try:
        import pythae  # noqa: F401
    except ImportError:
        return False
    return True


def pythae_vae(model, guide):
    """A pythae ``VAE`` (pythae 0.1.2, ``pip install -e ".[peers]"``) around the same weights: its
    encoder returns (loc, log variance) = (loc, 2 log scale) of pyro-air's q(z | x), its decoder
    sigmoid(logits) (pythae's "bce" likelihood scores probabilities). Same model, same guide."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.guide = guide

        def forward(self, x):
            loc, scale = guide.loc_scale(x)
            return ModelOutput(embedding=loc, log_covariance=2 * scale.log())

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(model.decoder(z)))

    config = VAEConfig(input_dim=(model.x_dim,), latent_dim=model.z_dim, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder()).eval()


class PythaeGetNLL(ImageBlocks):
    """pythae's own ``VAE.get_nll`` (the peer the per-datapoint row imitates), on consecutive image
    blocks: one image at a time, S / 100 batches of 100 repeated copies, mean -log p over the block."""

    def __init__(self, model, guide, images, block, num_samples):
        self.vae = pythae_vae(model, guide).to(images.device)
        super().__init__(images, block)
        self.S = num_samples

    @torch.no_grad()
    def __call__(self):
        xb = self.next_block()
        return self.vae.get_nll(xb, n_samples=self.S, batch_size=100)


class DecoderGemms:
    """Only the decoder's GEMMs for ``block`` images x S samples: at pyro-air's chunk shapes, or in
    blocks of ``rows`` rows; through torch's own product (``F.linear``: the BLAS torch was built
    with) or, ``library="onednn"``, through oneDNN (``pyro_air.backend.onednn``), so that the bound is
    the best dense product either library offers here."""

    def __init__(self, model, block, num_samples, device, rows=None, library="torch"):
        self.linear = F.linear if library == "torch" else onednn_linear
        self.layers = [(m.weight.detach(), m.bias.detach()) for m in linear_layers(model.decoder)]
        x_dim = self.layers[-1][0].shape[0]
        self.chunk = scored_chunk(num_samples, block, x_dim, device)
        self.num_chunks = math.ceil(num_samples / self.chunk)
        self.rows = self.chunk * block
        if rows is not None:
            self.num_chunks = math.ceil(num_samples * block / rows)
            self.rows = rows
        self.input = torch.randn(self.rows, self.layers[0][0].shape[1], device=device)
        self.flops = self.num_chunks * self.rows * 2 * sum(w.numel() for w, _ in self.layers)

    @torch.no_grad()
    def __call__(self):
        for _ in range(self.num_chunks):
            h = self.input
            for w, b in self.layers:
                h = self.linear(h, w, b)
        return h
