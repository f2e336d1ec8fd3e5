"""The run directory: one writer at a time, no run clobbered, and clear errors when the disk says no.

A run directory holds one run: ``train_args.json`` (the CLI's options), ``checkpoint.pt`` (last good
state), ``best.pt`` and ``metrics.jsonl``. The rules, and why:

- **One writer.** ``claim(run_dir)`` takes an exclusive lock on ``RUN/.lock`` (``fcntl.flock``)
  for as long as the run is written; a second trainer on the same directory is refused at once
  instead of interleaving checkpoints with the first. The kernel drops a flock when its process
  dies however it dies (SIGKILL included), so a lock left by a killed run never blocks the resume;
  the file itself stays (it only names the last holder, for the message). Claims are re-entrant
  within one process. ``fit`` is the one place that claims a run directory (AIR's comparison,
  ``pyro_air.compare.air``, also holds the folder of its three runs while ``fit`` claims each run
  inside it). Where ``fcntl`` does not
  exist (Windows) ``filelock.FileLock`` is used, whose OS lock is likewise released at exit.
- **No clobbering.** Starting a run (not resuming) in a directory that holds anything refuses;
  ``move_aside`` (``--overwrite``) renames the old run to ``RUN.old-<timestamp>`` first, so files
  of two runs are never mixed and nothing is deleted.
- **Nothing written before everything is checked**: callers validate options and data first and
  claim last; ``check_path`` itself only reads.
- **Faults are errors with a remedy**: a run-directory path that is a file or a dangling symlink,
  a run file that is a symlink (pyro-air writes only regular files inside the run directory), a
  directory that cannot be written, a full disk (``write_guard``) - each a ``RunDirError`` (a
  ``RuntimeError``: ``pyro-air: error: ...``, exit 2) saying what to do. Writes are atomic
  (``atomic_write_text``; checkpoints: ``pyro_air.train.checkpoints.atomic_save``) or undone on failure
  (``append_line``), and temporary files a killed writer left (``.NAME.*.tmp``) are removed by the
  next claim.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path

from pyro_air.support.atomic import atomic_write_text  # noqa: F401 (re-exported: run_dirs.atomic_write_text)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

RUN_FILES = ("train_args.json", "checkpoint.pt", "best.pt", "metrics.jsonl")
TRAINING_FILES = ("checkpoint.pt", "best.pt", "metrics.jsonl")  # written by fit (train_args.json: the CLI's, through fit's run_files)
LOCK_NAME = ".lock"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (locked, not empty, not writable, disk full, ...)."""


class RunDirLocked(RunDirError):
    """Another process is writing the run directory."""


def check_path(run_dir) -> Path:
    """Refuse a run-directory path that cannot hold a run; reads only, writes nothing."""
    path = Path(run_dir)
    if path.is_symlink() and not path.exists():
        raise RunDirError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; create that "
                          "directory, remove the link, or pass another run directory")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a directory; pass a directory for the run (e.g. --run-dir "
                          f"{path}-run), or move the file away")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{parent} is a file, so {path} cannot be created inside it; pass another run "
                                  "directory")
            break
    for name in RUN_FILES:
        f = path / name
        if f.is_symlink():
            raise RunDirError(
                f"{f} is a symbolic link (to {os.readlink(f)}); pyro-air writes a run's files only as regular files "
                "inside its run directory, so that a run never writes elsewhere or into another run's files. Replace "
                f"the link by a copy of its target (cp --remove-destination \"$(readlink {f})\" {f}) or use a new "
                "run directory")
        if f.exists() and not f.is_file():
            raise RunDirError(f"{f} is not a regular file; move it away or use a new run directory")
    return path


def contents(run_dir) -> list:
    """Names in the run directory other than the lock file (empty if it does not exist)."""
    path = Path(run_dir)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)


def holds_training(run_dir) -> bool:
    return any((Path(run_dir) / name).exists() for name in TRAINING_FILES)


def refuse_non_empty(run_dir, what: str = "run", resume_hint: str | None = None) -> None:
    """Refuse to start a new run in a directory that holds anything (an earlier run, or other files)."""
    names = contents(run_dir)
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        hint = f" continue it with {resume_hint}," if resume_hint and holds_training(run_dir) else ""
        raise RunDirError(f"{run_dir} is not empty (it holds {shown}); a new {what} would mix its files with "
                          f"those:{hint} pass --overwrite to move the old one aside (to {run_dir}.old-<time>), "
                          "or choose another run directory")


def move_aside(run_dir) -> Path | None:
    """Rename a non-empty run directory to RUN.old-<timestamp> (nothing is deleted); None if it is empty.

    Refused while another process writes it (its lock is taken first).
    """
    path = Path(run_dir)
    if not contents(path):
        return None
    with claim(path, start=False):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target, n = path.with_name(f"{path.name}.old-{stamp}"), 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.old-{stamp}-{n}")
        key = _key(path)
        with write_guard(path, "move the old run aside"):
            os.rename(path, target)
            handle = _held[key][0]
            if isinstance(handle, int) and _same_file(handle, target / LOCK_NAME):
                os.unlink(target / LOCK_NAME)  # our claim's lock file: the old run moves without it
    return target


# -- the lock -------------------------------------------------------------------------------------
_held: dict = {}  # real path of a lock file -> [handle, claims]: claims are re-entrant within a process


def _key(path: Path) -> str:
    return os.path.realpath(path / LOCK_NAME)


def _lock(path: Path):
    """Take the exclusive lock of ``path``, or raise RunDirLocked naming the holder."""
    lock_file = path / LOCK_NAME
    if fcntl is None:  # pragma: no cover - Windows
        import filelock

        handle = filelock.FileLock(str(lock_file), timeout=0)
        try:
            handle.acquire()
        except filelock.Timeout:
            raise RunDirLocked(_locked_message(path, "another process")) from None
        return handle
    for _ in range(10):
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirLocked(_locked_message(path, holder)) from None
            raise
        if _same_file(fd, lock_file):
            break
        os.close(fd)  # the holder removed the file as it let go (release): lock the one on disk now
    else:  # pragma: no cover - ten releases in a row while we tried
        raise RunDirLocked(_locked_message(path, "another process"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _release(path: Path, handle) -> None:
    """Let go of a claim: the lock file is removed while still locked, then unlocked, so a finished run
    leaves no ``.lock`` behind (a process that opened the old file sees it is gone and locks the new one)."""
    if isinstance(handle, int):
        with contextlib.suppress(FileNotFoundError):
            if _same_file(handle, path / LOCK_NAME):
                os.unlink(path / LOCK_NAME)
    _unlock(handle)


def _unlock(handle) -> None:
    if isinstance(handle, int):
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
    else:  # pragma: no cover - Windows
        handle.release()


def _locked_message(path: Path, holder: str) -> str:
    return (f"{path} is being written by another process ({holder}, holding {path / LOCK_NAME}); a run directory "
            "takes one writer at a time. Wait for that run to finish (or stop it with Ctrl-C / kill -INT: it "
            "saves a checkpoint), or use another run directory")


def is_locked(run_dir) -> bool:
    """Whether another process holds the run directory's lock (this process's own claims do not count)."""
    path = Path(run_dir)
    if not (path / LOCK_NAME).exists() or _key(path) in _held:
        return False
    try:
        handle = _lock(path)
    except RunDirLocked:
        return True
    _unlock(handle)
    return False


@contextlib.contextmanager
def claim(run_dir, start: bool = True):
    """Hold the run directory's lock inside the block (created with its parents if ``start``).

    Removes temporary files a killed writer left behind once the lock is held.
    """
    path = check_path(run_dir)
    key = None
    if start:
        with write_guard(path, "create the run directory"):
            path.mkdir(parents=True, exist_ok=True)
    with write_guard(path, "create its lock file"):
        key = _key(path)
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_lock(path), 1]
    try:
        remove_stale_temporaries(path)
        yield path
    finally:
        entry = _held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            _release(path, entry[0])


def remove_stale_temporaries(run_dir) -> list:
    """Delete ``.NAME.*.tmp`` / ``.NAME.tmp`` files (atomic writes a killed process never finished)."""
    removed = []
    for p in Path(run_dir).glob(".*.tmp"):
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p.name)
    return removed


# -- writing --------------------------------------------------------------------------------------
@contextlib.contextmanager
def write_guard(path, action: str, after: str = ""):
    """Turn an OSError inside the block into a RunDirError that says what failed and what to do."""
    try:
        yield
    except RunDirError:
        raise
    except OSError as err:
        raise RunDirError(describe_os_error(err, path, action) + (f" {after}" if after else "")) from err


def describe_os_error(err: OSError, path, action: str) -> str:
    reason = err.strerror or str(err)
    where = err.filename or path
    if err.errno == errno.ENOSPC:
        remedy = "free disk space (or move the run directory to a larger disk)"
    elif err.errno == errno.EDQUOT:
        remedy = "free space within your disk quota"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = "use a run directory on a writable file system, or fix its permissions"
    else:
        remedy = "check the file system"
    return f"could not {action} ({where}: {reason}); {remedy}."


def append_line(path, line: str) -> None:
    """Append one line; if the write fails (disk full), cut the file back so no half line remains."""
    data = (line + "\n").encode()
    existed = os.path.lexists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        except BaseException:
            os.ftruncate(fd, size)
            if not existed:  # the file this call created: gone again, not left empty
                os.unlink(path)
            raise
    finally:
        os.close(fd)
