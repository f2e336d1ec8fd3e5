"""Budgets: how much a comparison trains and tests.

- ``BUDGETS`` / ``budget(name, **overrides)`` / ``check_budget``: the encoder benchmark's presets
  (tiny, small, cpu, overfit), checked entry by entry (``pyro_air.compare.runner``).
- ``budget_from_env(tiny=..., small=..., full=...)``: a notebook's sizes, picked by
  ``$PYRO_AIR_TUTORIAL_BUDGET`` (default ``"small"``, minutes on a laptop CPU); the test suite sets
  ``tiny`` (seconds; checks the notebook runs, not its numbers); ``full`` is the papers' scale.
  Every tutorial's first code cell calls it:

      B = budget_from_env(tiny=dict(epochs=1, train_size=500), small=dict(epochs=5, train_size=10000),
                          full=dict(epochs=100, train_size=None))
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from types import MappingProxyType, SimpleNamespace

from pyro_air.core.validation import check_positive_int

BUDGETS = MappingProxyType({
    # seconds: what the tests and the tutorials' tiny budget run (the numbers mean nothing)
    "tiny": {
        "train_size": 100, "valid_size": 50, "test_size": 50,
        "hidden": [32], "z_dim": 4,
        "epochs": 2, "batch_size": 50, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 1, "valid_num_samples": 5,
        "test_num_samples": 20, "elbo_samples": 5,
        "amortization": {"points": 10, "num_steps": 5, "num_particles": 2},
        "seeds": [0, 1],
        "sa": {"num_steps": 2, "max_grad_norm": 5.0},
        "ais": None,
    },
    # minutes on one CPU thread for a few methods
    "small": {
        "train_size": 1000, "valid_size": 200, "test_size": 100,
        "hidden": [200, 200], "z_dim": 16,
        "epochs": 20, "batch_size": 100, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 5, "valid_num_samples": 10,
        "test_num_samples": 200, "elbo_samples": 10,
        "amortization": {"points": 20, "num_steps": 20, "num_particles": 5},
        "seeds": [0, 1],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": None,
    },
    # experiments/encoders/RESULTS.md: about a minute per run on one CPU thread (35 runs in 39 minutes)
    "cpu": {
        "train_size": 1000, "valid_size": 300, "test_size": 200,
        "hidden": [200, 200], "z_dim": 32,
        "epochs": 80, "batch_size": 100, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 10, "valid_num_samples": 20,
        "test_num_samples": 1000, "elbo_samples": 20,
        "amortization": {"points": 50, "num_steps": 50, "num_particles": 10},
        "seeds": [0, 1, 2],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": None,
    },
    # the over-fitting regime of experiments/air (1000 training images, 784-500-500-50, 300 epochs:
    # the VAE peaks on validation near epoch 200 and then declines), where AIR's claim lives; test
    # -log p(x) by IWAE-5000 and by AIS from q(z|x) (T = 100, C = 8) on the first 20 test images.
    # Several minutes per run on one CPU thread (experiments/encoders/RESULTS.md states the cost).
    "overfit": {
        "train_size": 1000, "valid_size": 300, "test_size": 300,
        "hidden": [500, 500], "z_dim": 50,
        "epochs": 300, "batch_size": 100, "lr": 1e-3, "lr_final_ratio": 0.1,
        "valid_every": 20, "valid_num_samples": 20,
        "test_num_samples": 5000, "elbo_samples": 100,
        "amortization": {"points": 50, "num_steps": 50, "num_particles": 10},
        "seeds": [0, 1, 2],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": {"points": 20, "num_steps": 100, "num_chains": 8},
    },
})
_NESTED = ("amortization", "sa", "ais")
_AIS_KEYS = ("points", "num_steps", "num_chains")
_POSITIVE_INTS = ("train_size", "valid_size", "test_size", "z_dim", "epochs", "batch_size", "valid_every",
                  "valid_num_samples", "test_num_samples", "elbo_samples")


def budget(name: str = "tiny", **overrides) -> dict:
    """A fresh copy of the preset ``name`` (``BUDGETS``: tiny, small, cpu, overfit) with ``overrides``.

    A nested entry (``amortization``, ``sa``, ``ais``) may be overridden in part:
    ``budget("tiny", epochs=5, amortization={"points": 20})``; ``ais=None`` switches the AIS estimate
    off, ``ais={"points": 20, "num_steps": 100, "num_chains": 4}`` on. Unknown names and keys are errors.
    """
    if name not in BUDGETS:
        raise ValueError(f"unknown benchmark budget {name!r}; use one of {', '.join(BUDGETS)} "
                         "(and override entries: budget('tiny', epochs=5))")
    out = copy.deepcopy(dict(BUDGETS[name]))
    for key, value in overrides.items():
        if key not in out:
            raise ValueError(f"unknown budget entry {key!r}; the entries are {', '.join(out)}")
        if key == "ais" and (value is None or out[key] is None):
            out[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value  # None switches AIS off
        elif key in _NESTED:
            if not isinstance(value, Mapping):
                raise ValueError(f"budget entry {key!r} is a dict ({out[key]}); override it with a dict")
            unknown = sorted(set(value) - set(out[key]))
            if unknown:
                raise ValueError(f"unknown budget entries {key}.{unknown}; the entries are {', '.join(out[key])}")
            out[key].update(copy.deepcopy(dict(value)))
        else:
            out[key] = copy.deepcopy(value)
    return check_budget(out)


def check_budget(b: Mapping) -> dict:
    """``b`` as a plain dict after checking it has every entry of a preset, with sensible values."""
    b = copy.deepcopy(dict(b))
    b.setdefault("ais", None)  # optional: budgets written before AIS joined the benchmark run without it
    missing = sorted(set(BUDGETS["tiny"]) - set(b))
    if missing:
        raise ValueError(f"the budget lacks {missing}; start from a preset: pyro_air.compare.budget('tiny', ...)")
    for key in _POSITIVE_INTS:
        check_positive_int(b[key], f"budget[{key!r}]")
    for key in ("points", "num_steps", "num_particles"):
        check_positive_int(b["amortization"][key], f"budget['amortization'][{key!r}]")
    if b["ais"] is not None:
        if not isinstance(b["ais"], Mapping) or set(b["ais"]) != set(_AIS_KEYS):
            raise ValueError(f"budget['ais'] must be None (no AIS) or a dict with {', '.join(_AIS_KEYS)}, "
                             f"e.g. {{'points': 50, 'num_steps': 200, 'num_chains': 8}}; got {b['ais']!r}")
        for key in _AIS_KEYS:
            check_positive_int(b["ais"][key], f"budget['ais'][{key!r}]")
        if b["ais"]["points"] > b["test_size"]:
            raise ValueError(f"budget ais.points={b['ais']['points']} exceeds test_size={b['test_size']}")
    if not b["seeds"] or len(set(b["seeds"])) != len(b["seeds"]):
        raise ValueError(f"budget['seeds'] must list distinct seeds, e.g. [0, 1, 2], got {b['seeds']!r}")
    for s in b["seeds"]:
        check_positive_int(s, "every seed in budget['seeds']", minimum=0)
    if b["batch_size"] > b["train_size"]:
        raise ValueError(f"budget batch_size={b['batch_size']} exceeds train_size={b['train_size']}")
    return b


# -- the notebooks' budgets ----------------------------------------------------------------------

BUDGET_ENV = "PYRO_AIR_TUTORIAL_BUDGET"
BUDGET_NAMES = ("tiny", "small", "full")
DEFAULT_BUDGET = "small"


def budget_from_env(name: str | None = None, **presets: dict) -> SimpleNamespace:
    """The preset named by ``name`` or ``$PYRO_AIR_TUTORIAL_BUDGET`` (default "small") as attributes."""
    if set(presets) != set(BUDGET_NAMES):
        raise ValueError(f"give one preset for each budget {BUDGET_NAMES}, got {sorted(presets)}")
    keys = {k: set(v) for k, v in presets.items()}
    if len({frozenset(v) for v in keys.values()}) != 1:
        raise ValueError(f"every budget preset must set the same keys, got {({k: sorted(v) for k, v in keys.items()})}")
    name = name or os.environ.get(BUDGET_ENV, DEFAULT_BUDGET)
    if name not in BUDGET_NAMES:
        raise ValueError(f"unknown tutorial budget {name!r} (from ${BUDGET_ENV}); use one of {', '.join(BUDGET_NAMES)}")
    return SimpleNamespace(name=name, **presets[name])
