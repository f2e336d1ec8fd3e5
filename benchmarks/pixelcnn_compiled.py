"""torch.compile for the PixelCNN VAE's training step (the InfoVAE Table 1 worker's runs).

    python -m benchmarks.pixelcnn_compiled --threads 1          # ~10 minutes; writes benchmarks/PIXELCNN_COMPILED.md
    python -m benchmarks.pixelcnn_compiled --threads 1 --quick

The InfoVAE worker (``experiments/infovae/pixelcnn_table.py``) trains a gated PixelCNN decoder of 16
channels for 20-120 epochs a run on one thread: tens of CPU-hours in all, nearly all of it in the
decoder's small convolutions and the gate's elementwise work (tanh(f) * sigmoid(g), the pads), which
inductor can fuse. Rows, interleaved in one run (``benchmarks.timing``), each a full optimizer step
at batch 100 as ``fit`` takes it (the objective's ``differentiable_loss``, backward, fused Adam), each
on its own copy of the same seeded weights, over the same 8 batches of binarized MNIST:

- the worker's 8-layer decoder (``deep``) and its 4-layer one, under the ELBO and under InfoVAE's
  MMD objective (alpha = 1, lambda = 1000), each eager (as the worker trained before) and compiled
  (``TrainConfig(compile=True)``, ``pyro_air.train.compiled``).
- evaluation: one IWAE estimate of log p(x) on 10 test images with 100 samples each, in the worker's
  chunks (10 samples x 10 images a decoder pass, no gradients), eager against the decoder inside
  ``pyro_air.train.compiled.compiled_forward`` (as the worker evaluates from session 13 on).

Compilation time (the first call) is reported apart; the timed calls come after a warm-up block.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import pyro
import torch

from benchmarks.compiled import Step, timed_first_call
from benchmarks.timing import interleave, ratio_table, report_script_arguments
from pyro_air import data
from pyro_air.backend.report import kernel_report
from pyro_air.runs import build_run
from pyro_air.train import parameters_of
from pyro_air.train.compiled import compiled_loss

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = {"ELBO": ("elbo", {}), "MMD": ("infovae", {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"})}


def spec(layers: int, objective: str) -> dict:
    """The worker's run spec (``PixelCNNTableWorker.spec`` at full scale) for ``layers`` gated layers."""
    name, cfg = OBJECTIVES[objective]
    return {"model": {"name": "pixelcnn-vae", "cfg": {"x_dim": 784, "z_dim": 5, "channels": 16, "num_layers": layers,
                                                      "kernel_size": 5}},
            "guide": {"name": "conv-gaussian", "cfg": {"x_dim": 784, "z_dim": 5, "channels": [16, 32], "hidden": 256}},
            "objective": {"name": name, "cfg": dict(cfg)}, "data": {"name": "mnist", "binarize": "static"}}


def cases(batches, num_data: int, layers: int, objective: str):
    """{row name: Step} for eager and compiled, and their first-call seconds."""
    steps, first = {}, {}
    for compiled in (False, True):
        model, guide, obj = build_run(spec(layers, objective), seed=0)

        def eager_loss(xb, model=model, guide=guide, obj=obj):
            return obj.differentiable_loss(model, guide, xb, num_data=num_data)
        loss = compiled_loss(eager_loss, torch.device("cpu")) if compiled else eager_loss
        name = f"{layers} layers, {objective}, {'compiled' if compiled else 'eager'}"
        steps[name] = Step(loss, parameters_of(model, guide), batches)
        first[name] = timed_first_call(steps[name])
    return steps, first


class Estimate:
    """One seeded IWAE-100 estimate on 10 images, the worker's chunking; ``compiled``: inside compiled_forward."""

    def __init__(self, model, guide, x, compiled: bool):
        self.model, self.guide, self.x, self.compiled = model, guide, x, compiled

    def __call__(self):
        from pyro_air.evaluate import log_likelihood
        from pyro_air.train.compiled import compiled_forward

        with compiled_forward(self.model.decoder, self.compiled):
            return log_likelihood(self.model, self.guide, self.x, num_samples=100, chunk_size=10, batch_size=10,
                                  seed=0)


def evaluation_section(x, layers: int, rounds: int) -> tuple[str, float, float]:
    """The table for ``layers``, the compiled estimate's first-call seconds and its largest difference."""
    model, guide, _ = build_run(spec(layers, "ELBO"), seed=0)
    eager, compiled = Estimate(model, guide, x, False), Estimate(model, guide, x, True)
    first = timed_first_call(compiled)
    difference = (compiled() - eager()).abs().max().item()
    names = {f"{layers} layers, IWAE-100 on 10 images, eager": eager,
             f"{layers} layers, IWAE-100 on 10 images, compiled_forward": compiled}
    times = interleave(names, rounds=rounds)
    return ratio_table(times, next(iter(names))), first, difference


def main(argv=None) -> None:
    args = report_script_arguments(__doc__.splitlines()[0], ROOT / "benchmarks" / "PIXELCNN_COMPILED.md", argv)
    rounds = 3 if args.quick else 12
    x = data.load("mnist", "train", binarize="static")
    batches = [x[i * 100:(i + 1) * 100] for i in range(8)]
    sections, firsts = [], {}
    with pyro.validation_enabled(False):
        for layers in (8, 4):
            for objective in OBJECTIVES:
                steps, first = cases(batches, len(x), layers, objective)
                firsts.update(first)
                times = interleave(steps, rounds=rounds, calls_per_block=2)
                baseline = next(iter(steps))
                sections.append(f"## {layers} gated layers, {objective}\n\n{ratio_table(times, baseline)}\n")
        test_x = data.load("mnist", "test", binarize="static")[:10]
        for layers in (8, 4):
            table, first, difference = evaluation_section(test_x, layers, rounds)
            sections.append(f"## Evaluation, {layers} gated layers (no gradients)\n\n{table}\n\nFirst compiled call "
                            f"{first:.1f} s; largest difference from eager {difference:.1e} nats.\n")
    report = kernel_report()
    text = (f"# torch.compile for the PixelCNN VAE step (benchmarks/pixelcnn_compiled.py)\n\n"
            f"CPU: {report['cpu']} ({', '.join(report['flags'])}); torch {report['torch']}; {args.threads} thread(s); "
            f"python {platform.python_version()}; {rounds} interleaved rounds of 2 steps "
            f"(batch 100){' (quick)' if args.quick else ''}; {time.strftime('%Y-%m-%d')}.\n\n"
            + "\n".join(sections) + "\nFirst call (the compiled one compiles): "
            + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in firsts.items()) + ".\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
