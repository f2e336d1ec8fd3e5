"""Training-step cases: pyro-air's training path vs hand-written PyTorch vs stock Pyro SVI.

Every case trains its own copy of the same initial 784-500-500-50 BernoulliVAE + GaussianEncoder
(tanh MLPs) with Adam(lr=1e-3) on the same cycle of binarized MNIST batches of 100, N = 60000.

- ``pyro-air``: the inner step of ``pyro_air.train.fit``: ``optimizer.zero_grad(set_to_none=True)``;
  ``objective.differentiable_loss(model, guide, xb, num_data=N).backward()``; ``optimizer.step()``;
  one ``torch.optim.Adam`` (``pyro_air.train.make_adam``) over all parameters, Pyro validation off.
  It takes the specialized formulas (``pyro_air.core.scoring``); ``generic direct path`` is the same step
  scoring through the distribution objects, as any other model/guide pair would.
- ``hand-written``: ``benchmarks.handwritten.HandwrittenVAE`` - the same loss with plain tensors
  and the same optimizer (the baseline); ``hand-written, nn.Tanh + BCE``: the same with torch's
  own tanh and binary cross-entropy, what pyro-air's two elementwise choices are measured against.
- ``typical user``: the hand-written step as one would write it without tuning - nn.Linear,
  nn.Tanh, BCE-with-logits, torch's default Adam.
- stock Pyro, ``Pyro defaults``: ``pyro.optim.Adam({"lr": lr})`` (torch's default, non-fused Adam).
- stock Pyro: ``pyro.infer.SVI(model, guide, pyro.optim.Adam(fused), loss).step(xb, num_data=N)`` with
  ``Trace_ELBO``, ``JitTrace_ELBO`` (ELBO group) and ``RenyiELBO(alpha=0)`` (= IWAE) and
  ``Trace_ELBO`` with 8 vectorized particles (IWAE-8 group; same compute, ELBO-8 objective).
"""
from __future__ import annotations

import contextlib
import copy
import itertools

import pyro
import pyro.infer
import pyro.optim
import torch

from benchmarks.handwritten import HandwrittenVAE
from pyro_air import guides, infer, models
from pyro_air.backend.openmp import denormals_flushed
from pyro_air.backend.precision import autocast
from pyro_air.backend.report import pinned_kernels
from pyro_air.backend.onednn import onednn_available
from pyro_air.core.scoring import generic_scoring as generic_path
from pyro_air.train import make_adam, parameters_of

LR = 1e-3


def fresh_pair(seed: int = 0, device="cpu", **size):
    """The benchmark's model and guide (784-500-500-50 unless ``size`` says z_dim / hidden)."""
    torch.manual_seed(seed)
    return models.build("bernoulli-vae", **size).to(device), guides.build("gaussian", **size).to(device)


def renamed_copy(model, guide, prefix: str):
    """Deep copies whose Pyro parameter names start with ``prefix`` (cases must not share the
    global param store: SVI reads parameters from it by name)."""
    m, g = copy.deepcopy(model), copy.deepcopy(guide)
    m._pyro_set_supermodule(f"{prefix}.model", m._pyro_context)
    g._pyro_set_supermodule(f"{prefix}.guide", g._pyro_context)
    return m, g


class PyroAirStep:
    """``precision="bf16"``: the step as ``fit`` runs it with ``TrainConfig(precision="bf16")``
    (forward under bf16 autocast, ``pyro_air.backend.precision.autocast``; loss and backward in float32)."""

    def __init__(self, model, guide, objective, batches, num_data, generic=False, precision="float32",
                 onednn_training=False):
        self.model, self.guide, self.objective = model, guide, objective
        self.path = generic_path if generic else contextlib.nullcontext
        if onednn_training:  # as with PYRO_AIR_LINEAR_TRAINING=onednn
            self.path = lambda: pinned_kernels({"linear_training": "onednn"})
        self.precision, self.device = precision, next(model.parameters()).device
        self.optimizer = make_adam(parameters_of(model, guide), LR)
        self.batches, self.num_data = itertools.cycle(batches), num_data

    def __call__(self):
        xb = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        with self.path(), autocast(self.precision, self.device):
            loss = self.objective.differentiable_loss(self.model, self.guide, xb, num_data=self.num_data)
        loss.float().backward()
        self.optimizer.step()
        return loss.detach()


class HandwrittenStep:
    """``typical_user=True``: what a typical user writes - nn.Linear, nn.Tanh, BCE-with-logits and
    torch's default Adam (``torch.optim.Adam(params, lr)``: the single-tensor kernel on the CPU)."""

    def __init__(self, model, guide, num_particles, bound, batches, num_data, plain_torch=False, typical_user=False):
        plain_torch = plain_torch or typical_user
        self.net = HandwrittenVAE.from_pyro_air(model, guide, plain_torch).to(next(model.parameters()).device)
        self.optimizer = (torch.optim.Adam(self.net.parameters(), lr=LR) if typical_user
                          else make_adam(self.net.parameters(), LR))
        self.num_particles, self.bound = num_particles, bound
        self.batches, self.num_data = itertools.cycle(batches), num_data

    def __call__(self):
        xb = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.net.loss(xb, self.num_particles, self.num_data, self.bound)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class StockPyroStep:
    """``pyro_defaults=False``: the same fused Adam kernel as the other cases, so the rows compare
    inference machinery (the tuned settings); True: ``pyro.optim.Adam({"lr": lr})``, Pyro's default."""

    def __init__(self, model, guide, loss, batches, num_data, pyro_defaults=False):
        optim = pyro.optim.Adam({"lr": LR} if pyro_defaults else {"lr": LR, "fused": True})
        self.svi = pyro.infer.SVI(model, guide, optim, loss=loss)
        self.batches, self.num_data = itertools.cycle(batches), num_data

    def __call__(self):
        return self.svi.step(next(self.batches), num_data=self.num_data)


def training_cases(num_particles: int, batches, num_data: int, device="cpu", **size) -> dict:
    """{name: step callable} for the ELBO group (num_particles=1) or the IWAE-K group."""
    model, guide = fresh_pair(device=device, **size)
    k = num_particles
    if k == 1:
        cases = {
            "pyro-air ELBO": PyroAirStep(*renamed_copy(model, guide, "air"), infer.MonteCarloELBO(), batches, num_data),
            "pyro-air ELBO, generic direct path": PyroAirStep(*renamed_copy(model, guide, "airg"), infer.MonteCarloELBO(),
                                                              batches, num_data, generic=True),
            "hand-written ELBO": HandwrittenStep(model, guide, 1, "elbo", batches, num_data),
            "pyro-air ELBO, bf16 autocast": PyroAirStep(*renamed_copy(model, guide, "airbf"), infer.MonteCarloELBO(),
                                                        batches, num_data, precision="bf16"),
            "hand-written ELBO, nn.Tanh + BCE": HandwrittenStep(model, guide, 1, "elbo", batches, num_data, True),
            "typical user ELBO (nn.Tanh, BCE-with-logits, default Adam)": HandwrittenStep(
                model, guide, 1, "elbo", batches, num_data, typical_user=True),
            "Pyro SVI Trace_ELBO": StockPyroStep(*renamed_copy(model, guide, "trace"),
                                                 pyro.infer.Trace_ELBO(max_plate_nesting=1), batches, num_data),
            "Pyro SVI Trace_ELBO, Pyro defaults (non-fused Adam)": StockPyroStep(
                *renamed_copy(model, guide, "tracedef"), pyro.infer.Trace_ELBO(), batches, num_data,
                pyro_defaults=True),
            "Pyro SVI JitTrace_ELBO": StockPyroStep(
                *renamed_copy(model, guide, "jit"),
                pyro.infer.JitTrace_ELBO(max_plate_nesting=1, ignore_jit_warnings=True), batches, num_data),
        }
    else:
        vec = {"num_particles": k, "vectorize_particles": True, "max_plate_nesting": 1}
        cases = {
            f"pyro-air IWAE-{k}": PyroAirStep(*renamed_copy(model, guide, "air"),
                                              infer.IWAE_ELBO(num_particles=k), batches, num_data),
            f"pyro-air IWAE-{k}, generic direct path": PyroAirStep(
                *renamed_copy(model, guide, "airg"), infer.IWAE_ELBO(num_particles=k), batches, num_data, generic=True),
            f"hand-written IWAE-{k}": HandwrittenStep(model, guide, k, "iwae", batches, num_data),
            f"pyro-air IWAE-{k}, bf16 autocast": PyroAirStep(*renamed_copy(model, guide, "airbf"),
                                                             infer.IWAE_ELBO(num_particles=k), batches, num_data,
                                                             precision="bf16"),
            f"hand-written IWAE-{k}, nn.Tanh + BCE": HandwrittenStep(model, guide, k, "iwae", batches, num_data, True),
            f"typical user IWAE-{k} (nn.Tanh, BCE-with-logits, default Adam)": HandwrittenStep(
                model, guide, k, "iwae", batches, num_data, typical_user=True),
            f"Pyro SVI RenyiELBO(alpha=0, K={k})": StockPyroStep(
                *renamed_copy(model, guide, "renyi"), pyro.infer.RenyiELBO(alpha=0, **vec), batches, num_data),
            f"Pyro SVI RenyiELBO(alpha=0, K={k}), Pyro defaults (non-fused Adam)": StockPyroStep(
                *renamed_copy(model, guide, "renyidef"), pyro.infer.RenyiELBO(alpha=0, **vec), batches, num_data,
                pyro_defaults=True),
            f"Pyro SVI Trace_ELBO(K={k}) [ELBO-{k}]": StockPyroStep(
                *renamed_copy(model, guide, "trace8"), pyro.infer.Trace_ELBO(**vec), batches, num_data),
        }
    if torch.device(device).type == "cpu" and onednn_available():  # the opt-in training path
        name = "ELBO" if k == 1 else f"IWAE-{k}"
        objective = infer.MonteCarloELBO() if k == 1 else infer.IWAE_ELBO(num_particles=k)
        cases[f"pyro-air {name}, oneDNN products (PYRO_AIR_LINEAR_TRAINING=onednn)"] = PyroAirStep(
            *renamed_copy(model, guide, "airdnn"), objective, batches, num_data, onednn_training=True)
    return {name: step if unflushed(name) else Flushed(step) for name, step in cases.items()}


def unflushed(name: str) -> bool:
    """The cases that keep denormal floats: a typical user's step and stock Pyro with its defaults.
    Every other case runs as ``fit`` trains, with denormals flushed on every pool thread."""
    return "typical user" in name or "Pyro defaults" in name


class Flushed:
    """A step case run inside ``denormals_flushed()`` (``fit``'s default while training). Without it
    the table would time denormal luck: from initialization IWAE's normalized weights underflow, and
    how many denormals a case meets depends on its rounding path (on one Intel Xeon stock Pyro's
    IWAE-8 step once ran 0.71x pyro-air's, unflushed, and 1.20x with both flushed:
    benchmarks/RESULTS-intel.md)."""

    def __init__(self, step):
        self.step = step

    def __call__(self):
        with denormals_flushed():
            return self.step()


# -- the whole epoch (issue 17): fit vs a hand-written loop over the same epoch -------------------
class FitEpoch:
    """One call: ``pyro_air.train.fit`` for one epoch over ``x`` (no validation, no run directory),
    continuing from the model's current weights: everything a user's call costs, outside the loop too."""

    def __init__(self, model, guide, objective, x, threads: int, precision: str = "float32"):
        from pyro_air.train import TrainConfig
        self.model, self.guide, self.objective, self.x = model, guide, objective, x
        self.config = TrainConfig(epochs=1, batch_size=100, lr=LR, progress=False, threads=threads,
                                  device=str(x.device), precision=precision)

    def __call__(self):
        from pyro_air.train import fit
        return fit(self.model, self.guide, self.objective, self.x, None, self.config)


class HandwrittenEpoch:
    """One epoch of the hand-written loop: a fresh Adam, a random order, N // 100 steps of
    ``HandwrittenVAE.loss``. ``typical_user``: nn.Tanh, BCE-with-logits, default Adam, and denormals
    not flushed, rows gathered by ``x[index]`` (what a user's own loop does); else pyro-air's kernels
    with denormals flushed and rows gathered by ``index_select``, as in ``fit``."""

    def __init__(self, model, guide, num_particles, bound, x, typical_user=False):
        self.net = HandwrittenVAE.from_pyro_air(model, guide, typical_user).to(x.device)
        self.num_particles, self.bound, self.x, self.typical = num_particles, bound, x, typical_user

    def __call__(self):
        from pyro_air.backend.openmp import denormals_flushed
        params = list(self.net.parameters())
        opt = torch.optim.Adam(params, lr=LR) if self.typical else make_adam(params, LR)
        n = len(self.x)
        order = torch.randperm(n, device=self.x.device)
        with denormals_flushed(not self.typical):
            for i in range(n // 100):
                rows = order[i * 100:(i + 1) * 100]  # the typical user indexes; fit gathers with index_select
                xb = self.x[rows] if self.typical else self.x.index_select(0, rows)
                opt.zero_grad(set_to_none=True)
                loss = self.net.loss(xb, self.num_particles, n, self.bound)
                loss.backward()
                opt.step()
        return loss.detach()


def typical_user_epoch(num_particles: int, images: int, device: str = "cpu") -> HandwrittenEpoch:
    """The typical user's epoch built inside a worker process (``benchmarks.remote.RemoteCase``):
    the first ``images`` training images and the benchmark's initial weights (``fresh_pair``), as
    in the parent. The worker never runs ``fit`` or an evaluation, so it keeps the C library's
    malloc settings, as a user's own process does (``pyro_air.backend.allocator``)."""
    from pyro_air import data
    x = data.load("mnist", "train")[:images].to(device)
    model, guide = fresh_pair(device=device)
    return HandwrittenEpoch(model, guide, num_particles, "elbo" if num_particles == 1 else "iwae", x, typical_user=True)


class EpochGemms:
    """Only the matrix products of an epoch's training steps (a lower bound no loop can beat at
    these shapes and thread count): per step, the forward product of every dense layer of the
    encoder (x-h-h-2z on the batch) and decoder (z-h-h-x on K x batch rows) with its bias, and in
    backward the weight gradient G^T X of each layer and the input gradient G W of each but the
    encoder's first (the data need none). Inputs are random; the products' cost does not depend
    on the values (denormals flushed, as in ``fit``)."""

    def __init__(self, model, guide, num_particles: int, num_steps: int, batch: int = 100, device="cpu"):
        def shapes(net):
            return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]
        encoder = shapes(guide.features) + shapes(guide.head)
        decoder = shapes(model.decoder)
        self.layers = [(batch, n_in, n_out, i > 0) for i, (n_in, n_out) in enumerate(encoder)]
        self.layers += [(num_particles * batch, n_in, n_out, True) for n_in, n_out in decoder]
        def randn(*shape):
            return torch.randn(*shape, device=device)
        self.tensors = [(randn(rows, n_in), randn(n_out, n_in) * 0.05, randn(n_out), randn(rows, n_out), needs_input_grad)
                        for rows, n_in, n_out, needs_input_grad in self.layers]
        self.num_steps = num_steps

    def __call__(self):
        from pyro_air.backend.openmp import denormals_flushed
        with denormals_flushed():
            for _ in range(self.num_steps):
                for x, w, b, g, needs_input_grad in self.tensors:
                    torch.addmm(b, x, w.t())
                for x, w, b, g, needs_input_grad in reversed(self.tensors):
                    torch.mm(g.t(), x)
                    if needs_input_grad:
                        torch.mm(g, w)


TYPICAL_OWN_PROCESS = "typical user {} epoch (nn.Tanh, BCE, default Adam; its own process)"
GEMMS_ONLY = "{} epoch's matrix products only (lower bound)"
TYPICAL_HERE = "typical user {} epoch, in this process (pyro-air's malloc settings)"


def epoch_cases(num_particles: int, x, threads: int) -> dict:
    from benchmarks.remote import RemoteCase
    model, guide = fresh_pair(device=x.device)
    k = num_particles
    bound, name = ("elbo", "ELBO") if k == 1 else ("iwae", f"IWAE-{k}")
    objective = infer.MonteCarloELBO() if k == 1 else infer.IWAE_ELBO(num_particles=k)
    return {
        f"hand-written {name} epoch (pyro-air's kernels, denormals flushed)": HandwrittenEpoch(model, guide, k, bound, x),
        f"pyro-air fit, one {name} epoch": FitEpoch(*renamed_copy(model, guide, f"fit{k}"), objective, x, threads),
        TYPICAL_OWN_PROCESS.format(name): RemoteCase(typical_user_epoch, k, len(x), str(x.device), threads=threads),
        TYPICAL_HERE.format(name): HandwrittenEpoch(model, guide, k, bound, x, typical_user=True),
        f"pyro-air fit, one {name} epoch, --precision bf16": FitEpoch(
            *renamed_copy(model, guide, f"fitbf{k}"), objective, x, threads, precision="bf16"),
        GEMMS_ONLY.format(name): EpochGemms(model, guide, k, len(x) // 100, device=x.device),
    }
