"""The denoising guide's training step: the direct path against the traced one and hand-written code.

    python -m benchmarks.denoising              # ~3 minutes on 2 cores; writes benchmarks/DENOISING.md
    python -m benchmarks.denoising --quick

Why: before the direct-scoring protocol (docs/design.md, contract 6) the ``Denoising`` wrapper
overrode ``forward`` and so fell off the untraced fast path; it now forwards ``direct_posterior``
to the encoder it wraps. Rows, interleaved in one run (``benchmarks.timing``), 784-500-500-50,
batch 100, sigma = 0.25, alpha = 1:

- ``hand-written DVAE``: the hand-written loss (``benchmarks.handwritten``) with the encoder fed
  x + sigma * eps, one eps per datapoint (AIR Eq. 13) - the baseline;
- ``pyro-air DVAE, direct path``: ``MonteCarloELBO().differentiable_loss`` as ``fit`` runs it;
- ``pyro-air DVAE, traced path``: the same loss with the traced primitive (what the denoising guide
  took before; forced here by running the step under a pass-through Pyro handler);
- the plain VAE's two pyro-air rows, so the DVAE ratios can be read beside the VAE's.
"""
from __future__ import annotations

import itertools
import math
import platform
from pathlib import Path

import pyro
import torch

from benchmarks.handwritten import HandwrittenVAE
from benchmarks.timing import interleave, ratio_table, report_script_arguments
from benchmarks.training import LR, renamed_copy
from pyro_air import data, guides, infer, models
from pyro_air.backend.report import kernel_report
from pyro_air.train import make_adam, parameters_of

ROOT = Path(__file__).resolve().parent.parent
SIGMA = 0.25


class HandwrittenDVAE(HandwrittenVAE):
    """The hand-written loss with a noisy encoder input: q(z | x + sigma eps), p(x | z) of the clean x."""

    sigma = SIGMA

    def log_weights(self, x: torch.Tensor, num_particles: int) -> torch.Tensor:
        noisy = x + torch.randn_like(x) * self.sigma
        loc, raw_scale = self.head(self.features(noisy)).chunk(2, dim=-1)
        scale = torch.nn.functional.softplus(raw_scale) + 1e-4
        eps = torch.empty(num_particles, *loc.shape, dtype=x.dtype, device=x.device).normal_()
        z = loc + eps * scale
        log_prior = (-(z ** 2) / 2 - math.log(math.sqrt(2 * math.pi))).sum(-1)
        logits = self.decoder(z)
        log_lik = -torch.nn.functional.softplus(logits).addcmul_(x, logits, value=-1).sum(-1)
        log_q = (-((z - loc) ** 2) / (2 * scale ** 2) - scale.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)
        return log_prior + log_lik - log_q


class Step:
    """One Adam step of ``loss(xb)`` over ``params`` on the next batch."""

    def __init__(self, loss, params, batches, context=None):
        self.loss, self.optimizer = loss, make_adam(params, LR)
        self.batches, self.context = itertools.cycle(batches), context

    def __call__(self):
        xb = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        if self.context is None:
            loss = self.loss(xb)
        else:
            with self.context():
                loss = self.loss(xb)
        loss.backward()
        self.optimizer.step()


def cases(batches, num_data: int) -> dict:
    torch.manual_seed(0)
    model = models.build("bernoulli-vae")
    encoder = guides.build("gaussian")
    dvae_model, dvae_guide = renamed_copy(model, guides.Denoising(guides.build("gaussian"), sigma=SIGMA), "dvae")
    dvae_guide.encoder.load_state_dict(encoder.state_dict())
    traced_model, traced_guide = renamed_copy(dvae_model, dvae_guide, "traced")
    vae_model, vae_guide = renamed_copy(model, encoder, "vae")
    vae_traced_model, vae_traced_guide = renamed_copy(model, encoder, "vaetraced")
    hand = HandwrittenDVAE.from_pyro_air(model, encoder)
    elbo = infer.MonteCarloELBO()

    def loss_of(m, g):
        return lambda xb: elbo.differentiable_loss(m, g, xb, num_data=num_data)

    passthrough = pyro.poutine.block  # any active handler makes the objective take the traced primitive
    return {
        "hand-written DVAE": Step(lambda xb: hand.loss(xb, 1, num_data), hand.parameters(), batches),
        "pyro-air DVAE, direct path": Step(loss_of(dvae_model, dvae_guide), parameters_of(dvae_model, dvae_guide),
                                           batches),
        "pyro-air DVAE, traced path": Step(loss_of(traced_model, traced_guide),
                                           parameters_of(traced_model, traced_guide), batches,
                                           context=lambda: passthrough(hide_fn=lambda msg: False)),
        "pyro-air VAE, direct path": Step(loss_of(vae_model, vae_guide), parameters_of(vae_model, vae_guide), batches),
        "pyro-air VAE, traced path": Step(loss_of(vae_traced_model, vae_traced_guide),
                                          parameters_of(vae_traced_model, vae_traced_guide), batches,
                                          context=lambda: passthrough(hide_fn=lambda msg: False)),
    }


def main(argv=None) -> None:
    args = report_script_arguments(__doc__.splitlines()[0], ROOT / "benchmarks" / "DENOISING.md", argv)
    x = data.load("mnist", "train")
    batches = [x[i * 100:(i + 1) * 100] for i in range(8)]
    rounds = 8 if args.quick else 40
    with pyro.validation_enabled(False):
        times = interleave(cases(batches, len(x)), rounds=rounds, calls_per_block=5)
    table = ratio_table(times, "hand-written DVAE")
    report = kernel_report()
    text = (f"# The denoising guide's training step (benchmarks/denoising.py)\n\n"
            f"CPU: {report['cpu']} ({', '.join(report['flags'])}); torch {report['torch']}; {args.threads} threads; "
            f"tanh kernel: {report['tanh']['kernel']} ({report['tanh']['source']}); {platform.python_version()}; "
            f"{rounds} rounds x 5 steps, interleaved{' (quick)' if args.quick else ''}.\n\n{table}\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
