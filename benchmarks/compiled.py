"""torch.compile on the CPU against pyro-air's eager kernels: an evaluation chunk and a training step.

    python -m benchmarks.compiled            # ~3 minutes on 2 cores; writes benchmarks/COMPILED.md
    python -m benchmarks.compiled --quick

Issue 17 asked to measure ``torch.compile`` again after the eager kernels changed. Rows,
interleaved in one run (``benchmarks.timing``), the reference 784-500-500-50 VAE, random weights:

- evaluation: the log joint of one scored chunk (``model.log_joint`` on [532, 10, 50] draws, the
  shape ``log_likelihood`` scores with 10 images and 16 MiB chunks): eager with the chosen kernels
  (oneDNN products with tanh fused where chosen) against ``torch.compile(model.log_joint,
  dynamic=False)`` (inductor; inside it pyro-air's layers run one by one, ``pyro_air.backend.nets.MLP``);
- training: one ELBO step (batch 100) as ``fit`` runs it eagerly against the compiled step of
  ``TrainConfig(compile=True)`` (``pyro_air.train.compiled``), each on its own copy of the weights.

Compilation time is reported separately (the first call); the timed calls come after warm-up.
"""
from __future__ import annotations

import copy
import platform
import time
from pathlib import Path

import pyro
import torch

from benchmarks.timing import interleave, ratio_table, report_script_arguments
from benchmarks.training import LR, fresh_pair
from pyro_air import data, infer
from pyro_air.backend.report import kernel_report
from pyro_air.evaluate.chunking import evaluation_mode
from pyro_air.train import make_adam, parameters_of

ROOT = Path(__file__).resolve().parent.parent


class ChunkScore:
    def __init__(self, model, x, z, fn):
        self.model, self.x, self.z, self.fn = model, x, z, fn

    def __call__(self):
        return self.fn(self.x, self.z)


class Step:
    """One optimizer step of ``loss(xb)`` over consecutive batches."""

    def __init__(self, loss, params, batches):
        self.loss, self.params, self.batches, self.i = loss, params, batches, 0
        self.opt = make_adam(self.params, LR)

    def __call__(self):
        xb = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(xb)
        loss.backward()
        self.opt.step()
        return loss.detach()


def timed_first_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def evaluation_cases(images):
    model, guide = fresh_pair()
    model.eval(), guide.eval()
    x = images[:10]
    with evaluation_mode(model, guide):
        z = guide.direct_posterior(x).rsample(532)
    eager = ChunkScore(model, x, z, model.log_joint)
    compiled = ChunkScore(model, x, z, torch.compile(model.log_joint, dynamic=False))
    with evaluation_mode(model, guide):
        compile_seconds = timed_first_call(compiled)
        difference = (compiled() - eager()).abs().max().item()
    return model, guide, {"eager log joint (chosen kernels)": eager, "torch.compile(log joint)": compiled}, \
        compile_seconds, difference


def training_cases(batches, num_data):
    from pyro_air.train.compiled import compiled_loss
    objective = infer.build("elbo")
    cases, first = {}, {}
    for name, compile_ in (("eager ELBO step (as fit runs it)", False), ("compiled ELBO step (TrainConfig(compile=True))", True)):
        model, guide = fresh_pair()
        model, guide = copy.deepcopy(model), copy.deepcopy(guide)

        def eager_loss(xb, model=model, guide=guide):
            return objective.differentiable_loss(model, guide, xb, num_data)
        loss = compiled_loss(eager_loss, torch.device("cpu")) if compile_ else eager_loss
        cases[name] = Step(loss, parameters_of(model, guide), batches)
        first[name] = timed_first_call(cases[name])
    return cases, first


def main(argv=None) -> None:
    args = report_script_arguments(__doc__.splitlines()[0], ROOT / "benchmarks" / "COMPILED.md", argv)
    rounds = 5 if args.quick else 30

    model, guide, ev_cases, ev_compile, ev_diff = evaluation_cases(data.load("mnist", "test"))
    with evaluation_mode(model, guide):
        ev_times = interleave(ev_cases, rounds=rounds)
    ev_table = ratio_table(ev_times, "eager log joint (chosen kernels)")

    x = data.load("mnist", "train")
    batches = [x[i * 100:(i + 1) * 100] for i in range(8)]
    with pyro.validation_enabled(False):
        tr_cases, first = training_cases(batches, len(x))
        tr_times = interleave(tr_cases, rounds=rounds, calls_per_block=5)
    tr_table = ratio_table(tr_times, "eager ELBO step (as fit runs it)")

    report = kernel_report()
    text = (f"# torch.compile on the CPU (benchmarks/compiled.py)\n\n"
            f"CPU: {report['cpu']} ({', '.join(report['flags'])}); torch {report['torch']}; {args.threads} threads; "
            f"dense layers without gradients: {report['linear']['kernel']}; tanh kernel: {report['tanh']['kernel']}; "
            f"python {platform.python_version()}; {rounds} interleaved rounds{' (quick)' if args.quick else ''}.\n\n"
            f"## An evaluation chunk's log joint ([532, 10] draws)\n\n{ev_table}\n\n"
            f"First compiled call (compilation): {ev_compile:.1f} s; largest difference from eager: {ev_diff:.2e} "
            f"nats (float rounding: other kernels, other order of additions).\n\n"
            f"## An ELBO training step (batch 100; 5 steps per block)\n\n{tr_table}\n\n"
            f"First call (the compiled one compiles): "
            + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in first.items()) + ".\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
