"""Files written atomically: a temporary file beside the target, then one rename, so a reader (or a
crash) sees the old content or the new one, never half of either."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _replace_from_temp(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` by a temporary file and a rename: the old content or the new, never half."""
    _replace_from_temp(Path(path), lambda f: f.write(text.encode()))


def atomic_save_figure(fig, path, **savefig_kwargs) -> None:
    """``fig.savefig(path, ...)`` through a temporary file and a rename; the format is the path's suffix."""
    path = Path(path)
    fmt = savefig_kwargs.pop("format", None) or path.suffix.lstrip(".") or None
    _replace_from_temp(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))
