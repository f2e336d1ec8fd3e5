"""Files written atomically and read safely: the one loader that both the training loop
(``pyro_air.train.checkpoints``) and the zoo (``pyro_air.zoo.loading``) use, so that neither depends
on the other for it.

A crash during a write leaves the previous file intact: the new file only replaces the old one by an
atomic ``os.replace`` after its bytes are on disk. ``load`` reads with ``weights_only=True``, so a
file can hold tensors and plain values only, never code; a file of a newer checkpoint format than
this code writes is refused, older ones still load (format 1 = resumable at epoch boundaries;
2 = also mid-epoch). Every refusal is a one-line ``CheckpointError`` that names the file.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from io import BytesIO
from pathlib import Path

import torch

from pyro_air.core.validation import one_line

FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, from a newer format or from another configuration."""


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
