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
    def __init__(self, model, guide, objective, batches, num_data, generic=False):
        self.model, self.guide, self.objective = model, guide, objective
        self.path = generic_path if generic else contextlib.nullcontext
        self.optimizer = make_adam(parameters_of(model, guide), LR)
        self.batches, self.num_data = itertools.cycle(batches), num_data

    def __call__(self):
        xb = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        with self.path():
            loss = self.objective.differentiable_loss(self.model, self.guide, xb, num_data=self.num_data)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class HandwrittenStep:
    def __init__(self, model, guide, num_particles, bound, batches, num_data, plain_torch=False):
        self.net = HandwrittenVAE.from_pyro_air(model, guide, plain_torch).to(next(model.parameters()).device)
        self.optimizer = make_adam(self.net.parameters(), LR)
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
    def __init__(self, model, guide, loss, batches, num_data):
        # the same fused Adam kernel as the other cases, so the rows compare inference machinery
        self.svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": LR, "fused": True}), loss=loss)
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
            "hand-written ELBO, nn.Tanh + BCE": HandwrittenStep(model, guide, 1, "elbo", batches, num_data, True),
            "Pyro SVI Trace_ELBO": StockPyroStep(*renamed_copy(model, guide, "trace"),
                                                 pyro.infer.Trace_ELBO(max_plate_nesting=1), batches, num_data),
            "Pyro SVI JitTrace_ELBO": StockPyroStep(
                *renamed_copy(model, guide, "jit"),
                pyro.infer.JitTrace_ELBO(max_plate_nesting=1, ignore_jit_warnings=True), batches, num_data),
        }
    else:
        vec = dict(num_particles=k, vectorize_particles=True, max_plate_nesting=1)
        cases = {
            f"pyro-air IWAE-{k}": PyroAirStep(*renamed_copy(model, guide, "air"),
                                              infer.IWAE_ELBO(num_particles=k), batches, num_data),
            f"pyro-air IWAE-{k}, generic direct path": PyroAirStep(
                *renamed_copy(model, guide, "airg"), infer.IWAE_ELBO(num_particles=k), batches, num_data, generic=True),
            f"hand-written IWAE-{k}": HandwrittenStep(model, guide, k, "iwae", batches, num_data),
            f"hand-written IWAE-{k}, nn.Tanh + BCE": HandwrittenStep(model, guide, k, "iwae", batches, num_data, True),
            f"Pyro SVI RenyiELBO(alpha=0, K={k})": StockPyroStep(
                *renamed_copy(model, guide, "renyi"), pyro.infer.RenyiELBO(alpha=0, **vec), batches, num_data),
            f"Pyro SVI Trace_ELBO(K={k}) [ELBO-{k}]": StockPyroStep(
                *renamed_copy(model, guide, "trace8"), pyro.infer.Trace_ELBO(**vec), batches, num_data),
        }
    return cases
