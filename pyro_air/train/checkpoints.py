"""Checkpoints: written atomically (temporary file, fsync, rename), loaded with weights_only=True.

A crash during a write leaves the previous checkpoint intact: the new file only replaces the
old one by an atomic ``os.replace`` after its bytes are on disk.

Format versions: 1 = resumable at epoch boundaries; 2 = also mid-epoch (data order, position in
the epoch, partial loss sum, dynamic-binarization generator, learning-rate scale after rollbacks).
A checkpoint of a newer format than this code writes is refused; older ones still load.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from pyro_air.storage import FORMAT_VERSION, CheckpointError, atomic_save, load  # noqa: F401 (moved there)


def flatten(tree, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; tuples become lists (as they would after a JSON round trip)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        if not tree and prefix:
            out[prefix[:-1]] = {}
        return out
    if isinstance(tree, tuple):
        tree = list(tree)
    if isinstance(tree, list):
        tree = [flatten(v)[""] if isinstance(v, (tuple, list)) else v for v in tree]
    return {prefix[:-1] if prefix else "": tree}


def differing_keys(stored: dict, requested: dict, ignore=()) -> list:
    """Lines 'key: stored vs requested' for every dotted key (not in ``ignore``) whose value differs."""
    a, b = flatten(stored), flatten(requested)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in ignore:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} in the checkpoint, {b.get(key, '<absent>')!r} requested")
    return lines


# Training options added after checkpoints were first written: a checkpoint without one is taken to
# agree with the resuming run (before issue 17 no run flushed denormals, set threads or used bf16;
# a resume of such a run flushes denormals from the resume point on, which changes float rounding only).
ADDED_TRAIN_OPTIONS = ("flush_denormals", "threads", "precision", "compile")


def check_same_run(ckpt: dict, path, spec: dict, train_config: dict, may_change=()) -> None:
    """Refuse to resume a checkpoint written for another spec or training configuration."""
    stored = dict(ckpt.get("train_config") or {})
    if stored:
        stored.update({k: train_config[k] for k in ADDED_TRAIN_OPTIONS if k not in stored and k in train_config})
    lines = differing_keys({"spec": ckpt.get("spec") or {}, "train_config": stored},
                           {"spec": spec or {}, "train_config": train_config}, ignore=may_change)
    if lines:
        listing = "; ".join(lines)
        raise CheckpointError(
            f"{path} was written by a run with a different configuration; these keys differ: {listing}. "
            "Resume with the configuration stored in the checkpoint (e.g. `pyro-air train --resume RUN_DIR` "
            "with no other options), or start a new run in a new run directory."
        )


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _python_state_to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_lists(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]
