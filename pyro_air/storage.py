"""Files written atomically and read safely: the one loader that both the training loop
(``pyro_air.train.checkpoints``) and the zoo (``pyro_air.zoo.loading``) use, so that neither depends
on the other for it.

A crash during a write leaves the previous file intact: the new file only replaces the old one by an
atomic ``os.replace`` after its bytes are on disk. ``load`` reads with ``weights_only=True``, so a
file can hold tensors and plain values only, never code; a file of a newer checkpoint format than
this code writes is refused, older ones still load (format 1 = resumable at epoch boundaries;
2 = also mid-epoch).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, from a newer format or from another configuration."""



def atomic_save(obj, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
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


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; pass a run directory written by `pyro-air train`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version is None:
        raise CheckpointError(f"{path} is not a pyro-air checkpoint (no format_version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this pyro-air reads ({FORMAT_VERSION}); "
            "upgrade pyro-air"
        )
    return ckpt
