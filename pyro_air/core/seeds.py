"""Seeds: one base seed per run, one independent stream per component of the run.

Why streams: a run draws random numbers for several unrelated things - the model's initial
weights, the guide's, the order of the data in each epoch, the latent samples of training steps,
the validation and test estimates. If they all came from one global generator, adding or removing
one of them (a validation every epoch instead of every 20, an extra evaluation, a new component
built first) would shift every later draw, and "the same seed" would not mean "the same run". So
each component takes its own stream, ``stream_seed(seed, name, *keys)``:

    model_init, guide_init, objective_init   build_run(spec, seed=s): the initial parameters
    data_order (epoch)                       the permutation of the training set in each epoch
    training (rank)                          latent samples of the training steps (rank 0 alone)
    binarize_train, binarize_valid           dynamic binarization of batches and of validation data
    validation (epoch)                       the validation IWAE-k bound of early stopping
    evaluation                               test-time estimates (pyro-air evaluate / compare)
    diagnostics                              pyro-air diagnose's draws
    rollback (n)                             the retried steps after the n-th non-finite rollback
    lagging                                  the inner encoder minibatches of lagging-encoder training

``derive_seed(seed, *keys)`` hashes (seed, number of keys, *keys) with NumPy's ``SeedSequence``
into a 32-bit seed (valid for torch, NumPy and Python alike). The number of keys is part of the
hash because ``SeedSequence`` pads its input with zeros: without it (s, 1) and (s, 1, 0) would give
the same stream.

``seed_all(seed)`` seeds torch, NumPy and Python's ``random`` (what ``fit`` does for the training
stream, and what a script must do before building modules it does not build with ``build_run``).
Evaluation uses one stream per datapoint batch (``pyro_air.evaluate.log_likelihood``), so a batch
scored by any process of a distributed run draws the very samples a single process draws for it.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pyro
import torch

# The first key of each named stream; numbers >= 1000 keep them apart from the per-batch keys
# (0, 1, 2, ...) that evaluation derives from its own seed.
STREAMS = {
    "model_init": 1001,
    "guide_init": 1002,
    "objective_init": 1003,
    "data_order": 1004,
    "training": 1005,
    "binarize_train": 1006,
    "binarize_valid": 1007,
    "validation": 1008,
    "evaluation": 1009,
    "diagnostics": 1010,
    "rollback": 1011,
    "lagging": 1012,
}


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed determined by (seed, *keys); different keys give independent streams."""
    entropy = [int(seed), *(int(k) for k in keys)]
    if any(v < 0 for v in entropy):
        raise ValueError(f"seeds and keys must be non-negative integers, got {entropy}")
    return int(np.random.SeedSequence([entropy[0], len(keys), *entropy[1:]]).generate_state(1, np.uint32)[0])


def stream_seed(seed: int, name: str, *keys: int) -> int:
    """The seed of the named component stream of a run with base seed ``seed`` (see ``STREAMS``)."""
    if name not in STREAMS:
        raise KeyError(f"unknown random stream {name!r}; known streams are: {', '.join(STREAMS)}")
    return derive_seed(seed, STREAMS[name], *keys)


def seed_all(seed: int) -> None:
    """Seed torch (every device), NumPy's global generator and Python's ``random`` with ``seed``.

    Call it before building models and guides by hand (``build_run(spec, seed=...)`` does it per
    component), so that their initial weights are fixed by the seed.
    """
    pyro.set_rng_seed(int(seed))


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None):
    """Inside: torch's global RNG (and ``device``'s, on CUDA) seeded with ``seed``; restored after.

    ``seed=None`` changes nothing: the caller's stream is used and advanced as usual.
    """
    if seed is None:
        yield
        return
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
