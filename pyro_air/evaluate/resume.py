"""Resumable per-datapoint evaluation: the finished batches of a long estimate kept on disk.

An IWAE-5000 estimate on 10000 test images takes from ten minutes to most of an hour on one CPU
thread; a run cut short (a session that ends, Ctrl-C, a killed worker) should not start over. With
``resume_file=PATH`` (``log_likelihood``, ``elbo``, ``compare.evaluate_row``) the evaluator writes the
per-datapoint values of its finished batches of datapoints to PATH, atomically: every
``SAVE_EVERY_SECONDS`` (so a killed process loses at most that much work, and a cheap evaluation is
not slowed by its saves) and when the call ends by an exception (Ctrl-C, an error). A later call with
the same model, guide, data and settings skips those batches. Seeded evaluation draws batch i's
samples from a stream seeded by ``derive_seed(seed, i)`` whatever came before it, so a resumed
estimate is the uninterrupted one, value for value; this is why resuming needs ``seed``. The file is
deleted once the whole Tensor[N] is returned.

The file carries a fingerprint of what it is the result of: the estimator (its description, which
names S), N, the batch and chunk sizes, the seed, SHA-256 digests of the data, of every parameter
and buffer of model and guide and, where either is a plain function, of Pyro's param store. A file
whose fingerprint differs (another model, the model trained further, other data or settings) is
refused with a one-line ``ValueError`` that says what to do, never mixed in or overwritten.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import pyro
import torch

from pyro_air.storage import atomic_save

FORMAT = 1
SAVE_EVERY_SECONDS = 5.0


def _digest(tensors) -> str:
    """SHA-256 of the tensors' bytes, in order: changes with any trained weight or data value, and is the
    same on any machine that holds the same tensors (a restored snapshot)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _module_tensors(module) -> list:
    if not isinstance(module, torch.nn.Module):
        return []  # a plain-function model or guide: its parameters live in Pyro's param store
    return [v for v in module.state_dict().values() if torch.is_tensor(v)]


def _param_store_tensors() -> list:
    """Pyro's global parameters (``pyro.param``, ``pyro.module``), in name order."""
    return [v for _, v in sorted(pyro.get_param_store().named_parameters(), key=lambda item: item[0])]


def fingerprint(model, guide, data: tuple, desc: str, batch_size: int, chunk: int, seed: int) -> dict:
    """What a resume file must match to be reused (module docstring)."""
    return {"format": FORMAT, "estimator": desc, "points": len(data[0]), "batch_size": batch_size,
            "chunk": chunk, "seed": seed, "data": _digest(data),
            "model": _digest(_module_tensors(model)), "guide": _digest(_module_tensors(guide)),
            # only where a plain function's parameters can live there: a module's are its own, and the store
            # may hold leftovers of whatever else the process trained
            "param_store": (None if isinstance(model, torch.nn.Module) and isinstance(guide, torch.nn.Module)
                            else _digest(_param_store_tensors()))}


class PartialEvaluation:
    """The finished batches of one evaluation, ``{batch index: Tensor[B]}``, kept in ``path``."""

    def __init__(self, path, expected: dict):
        self.path, self.expected = Path(path), expected
        self._saved_at, self._unsaved = time.monotonic(), False

    def load(self) -> dict:
        """The batches a previous call finished; {} when there is no file."""
        if not self.path.exists():
            return {}
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            found, batches = saved["fingerprint"], saved["batches"]
        except Exception as err:  # a truncated or foreign file: say so, do not guess
            raise ValueError(f"resume file {self.path} is not a partial evaluation ({type(err).__name__}); "
                             "delete it or pass another resume_file") from None
        if found != self.expected:
            differs = sorted(k for k in set(found) | set(self.expected) if found.get(k) != self.expected.get(k))
            raise ValueError(f"resume file {self.path} belongs to another evaluation ({', '.join(differs)} differ); "
                             "delete it to start over or pass another resume_file")
        return dict(batches)

    def add(self, batches: dict, index: int, values: torch.Tensor) -> None:
        """Batch ``index`` is finished; the file is rewritten when the last write is SAVE_EVERY_SECONDS old."""
        batches[index] = values
        self._unsaved = True
        if time.monotonic() - self._saved_at >= SAVE_EVERY_SECONDS:
            self.save(batches)

    def save(self, batches: dict) -> None:
        """Write the finished batches now, if any is not on disk yet."""
        if self._unsaved:
            atomic_save({"fingerprint": self.expected, "batches": batches}, self.path)
            self._saved_at, self._unsaved = time.monotonic(), False

    def finish(self) -> None:
        """The evaluation returned: its partial file is no longer needed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def resume_files(resume_dir, *names: str, keep: bool = False):
    """Paths ``resume_dir/NAME.pt`` (Nones without a ``resume_dir``) for several estimates of one result,
    each called with ``keep_resume_file=True`` so that a cut in a later one does not redraw an earlier one;
    deleted once the block ends normally (kept with ``keep``, for a caller that cleans up later), kept
    when it ends by an exception."""
    files = [None if resume_dir is None else Path(resume_dir) / f"{name}.pt" for name in names]
    yield files
    if not keep:
        for f in files:
            if f is not None:
                f.unlink(missing_ok=True)
