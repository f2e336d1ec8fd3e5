"""Checkpoints: written atomically (temporary file, fsync, rename), loaded with weights_only=True.

A crash during a write leaves the previous checkpoint intact: the new file only replaces the
old one by an atomic ``os.replace`` after its bytes are on disk.

Format versions: 1 = resumable at epoch boundaries; 2 = also mid-epoch (data order, position in
the epoch, partial loss sum, dynamic-binarization generator, learning-rate scale after rollbacks).
A checkpoint of a newer format than this code writes is refused; older ones still load.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import torch

from pyro_air.core.validation import one_line

FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, from a newer format or from another configuration."""


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


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically: serialized in memory first, then written
    to a temporary file, fsynced and renamed. Serializing first keeps torch's zip writer away from the
    disk, so a full disk is Python's ``OSError`` (ENOSPC, the "no space left" message) and never the
    writer's ``[enforce fail at inline_container.cc]`` RuntimeError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = BytesIO()
    try:
        torch.save(obj, buffer)
    except RuntimeError as err:  # torch's writer turns an exception in a write (Ctrl-C) into its own text
        if isinstance(err.__context__, KeyboardInterrupt):
            raise err.__context__ from None
        raise
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def unsafe_message(path, err: BaseException) -> str:
    """One line for a file that torch's safe loader (``weights_only=True``) refused: what it holds, that
    nothing of it ran, and what to do (torch's own text spans many lines and offers to run it)."""
    text = str(err)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return (f"{path} is not a readable checkpoint: it holds a reference to {found.group(1)}, not only tensors "
                "and plain values, so it was not loaded (loading it could run code). It was not written by pyro-air "
                "as it is: use a file from a source you trust, or train again")
    reason = re.search(r"WeightsUnpickler error:(.*?)(Check the documentation|$)", text, re.DOTALL)
    detail = one_line(reason.group(1), 120) if reason else "unreadable pickle data"
    return (f"{path} is not a readable checkpoint (the safe loader stopped at: {detail}); it is damaged or was not "
            "written by torch.save, and nothing of it was run: use the file as pyro-air wrote it, or train again")


def load(path: str | os.PathLike, map_location="cpu", data: bytes | None = None) -> dict:
    """The checkpoint at ``path`` (a run directory: its checkpoint.pt), read with ``weights_only=True``.
    ``data``: the file's bytes, already read (and verified) by the caller - they are loaded instead of
    reading ``path`` again, which then only names the file in messages."""
    path = Path(path)
    if data is not None:
        return check_loaded(torch_load_safely(BytesIO(data), path, map_location), path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; pass a run directory written by `pyro-air train`")
    return check_loaded(torch_load_safely(path, path, map_location), path)


def torch_load_safely(source, path, map_location) -> object:
    """``torch.load(source, weights_only=True)`` with every failure a one-line CheckpointError naming ``path``."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says it all
            warnings.simplefilter("ignore")
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):  # not a refusal of the safe loader: a damaged file
            raise CheckpointError(f"{path} is not a readable checkpoint (UnpicklingError: {one_line(err)})") from err
        raise CheckpointError(unsafe_message(path, err)) from err
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {one_line(err)})") from err


def check_loaded(ckpt, path) -> dict:
    """A loaded checkpoint, refused unless it is a dict of a format version this code reads."""
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version is None or isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path} is not a pyro-air checkpoint (no integer format_version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this pyro-air reads ({FORMAT_VERSION}); "
            "upgrade pyro-air"
        )
    return ckpt


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
