"""The run directory and the file system: locks, non-empty and odd run directories, full disks, interruptions.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from tests.errors.builders import BadAt, tiny_fit
from tests.errors.table import Case, cli, raised

TITLE = "The run directory and the file system"


class _SignalAt(BadAt):
    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.bad:
            os.kill(os.getpid(), signal.SIGINT)
        return self.objective.differentiable_loss(*args, **kwargs)


def _locked(tmp, mp):
    run = tmp / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(run / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'pid {os.getpid()} on host\\n'.encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from pyro_air.train import run_dir
        return raised(lambda: run_dir.claim(run).__enter__())
    finally:
        holder.kill()
        holder.wait()


def _not_empty(tmp, mp):
    run = tmp / "run"
    run.mkdir()
    (run / "notes.txt").write_text("x")
    return cli("train", "--run-dir", run)


def _is_file(tmp, mp):
    (tmp / "run").write_text("x")
    return cli("train", "--run-dir", tmp / "run")


def _dangling(tmp, mp):
    (tmp / "run").symlink_to(tmp / "gone")
    return cli("train", "--run-dir", tmp / "run")


def _symlinked_metrics(tmp, mp):
    run = tmp / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(tmp / "elsewhere.jsonl")
    from pyro_air.train import run_dir
    return raised(run_dir.check_path, run)


def _read_only(tmp, mp):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    mp.setattr(Path, "mkdir", read_only)
    return raised(tiny_fit, tmp / "run")


def _disk_full(tmp, mp):
    real_save, calls = torch.save, []

    def full_on_second(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    mp.setattr(torch, "save", full_on_second)
    return raised(tiny_fit, tmp)


def _disk_full_device(tmp, mp):
    """The kernel's own ENOSPC: after the first save, every temporary file is opened on /dev/full."""
    import tempfile
    real, calls = tempfile.mkstemp, []

    def mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        calls.append(name)
        if len(calls) > 1:
            os.close(fd)
            os.unlink(name)
            return os.open("/dev/full", os.O_WRONLY), name
        return fd, name

    mp.setattr(tempfile, "mkstemp", mkstemp)
    return raised(tiny_fit, tmp)


def _holds_a_run(tmp, mp):
    tiny_fit(tmp, epochs=1)
    return raised(tiny_fit, tmp, epochs=1)


def _interrupted(tmp, mp):
    return raised(tiny_fit, tmp, objective=_SignalAt({6}))


def _interrupted_cli(tmp, mp):
    from pyro_air.cli import commands as cli_module
    from pyro_air.runs import build_run

    def with_signal(spec, seed=None):
        model, guide, _ = build_run(spec, seed=seed)
        return model, guide, _SignalAt({6})

    from tests.signal_worker import train_args, write_tiny_amat
    mp.setattr(cli_module, "build_run", with_signal)
    data_dir = tmp / "data"
    data_dir.mkdir()
    return cli(*train_args(write_tiny_amat(data_dir)), "--run-dir", tmp / "run")


CASES = [
    Case("run-dir-locked", "a second trainer on a run directory another process is writing", "RunDirLocked",
         "…/run is being written by another process (pid … on host, holding …/run/.lock); a run directory takes one "
         "writer at a time. Wait for that run to finish (or stop it with Ctrl-C / kill -INT: it saves a checkpoint), "
         "or use another run directory", _locked),
    Case("run-dir-not-empty", "`pyro-air train` (or `compare`, `quickstart`) into a non-empty directory without "
         "`--resume`", "exit 2", "pyro-air: error: …/run is not empty (it holds notes.txt); a new run would mix its "
         "files with those: pass --overwrite to move the old one aside (to …/run.old-<time>), or choose another run "
         "directory", _not_empty),
    Case("run-dir-holds-a-run", "`fit(..., run_dir=RUN)` where RUN holds a run, without `resume=True`",
         "RunDirError", "… already holds a run (checkpoint.pt, best.pt, metrics.jsonl); resume it with fit(..., "
         "resume=True), move it aside with pyro_air.train.run_dir.move_aside(run_dir), or train into another run_dir",
         _holds_a_run),
    Case("run-dir-is-a-file", "a run-directory path that is a file", "exit 2",
         "pyro-air: error: …/run is a file, not a directory; pass a directory for the run (e.g. --run-dir …/run-run), "
         "or move the file away", _is_file),
    Case("run-dir-dangling-symlink", "a run-directory path that is a dangling symbolic link", "exit 2",
         "pyro-air: error: …/run is a symbolic link to …/gone, which does not exist; create that directory, remove "
         "the link, or pass another run directory", _dangling),
    Case("run-file-symlink", "`metrics.jsonl` (or another run file) that is a symbolic link", "RunDirError",
         "…/run/metrics.jsonl is a symbolic link (to …/elsewhere.jsonl); pyro-air writes a run's files only as "
         "regular files inside its run directory, so that a run never writes elsewhere or into another run's files. "
         "Replace the link by a copy of its target (cp --remove-destination \"$(readlink …/run/metrics.jsonl)\" "
         "…/run/metrics.jsonl) or use a new run directory", _symlinked_metrics),
    Case("read-only", "a run directory on a read-only file system (or without write permission)", "RunDirError",
         "could not create the run directory (…/run: Read-only file system); use a run directory on a writable file "
         "system, or fix its permissions.", _read_only),
    Case("disk-full", "the disk fills up while training", "RunDirError",
         "could not write the checkpoint (…/checkpoint.pt: No space left on device); free disk space (or move the "
         "run directory to a larger disk). The run directory keeps its last complete checkpoint; then continue with: "
         "pyro-air train --resume … (or fit(..., resume=True)).", _disk_full),
    Case("disk-full-device", "the same, the kernel's ENOSPC inside a checkpoint save (a file on /dev/full; torch's "
         "zip writer never touches the disk)", "RunDirError",
         "could not write the checkpoint (…/checkpoint.pt: No space left on device); free disk space (or move "
         "the run directory to a larger disk). The run directory keeps its last complete checkpoint; then continue "
         "with: pyro-air train --resume … (or fit(..., resume=True)).", _disk_full_device),
    Case("interrupted", "SIGINT (Ctrl-C) or SIGTERM while `fit` trains", "TrainingInterrupted (a KeyboardInterrupt)",
         "training interrupted by SIGINT at epoch 1 step 6; the checkpoint …/checkpoint.pt holds this position "
         "(resume with fit(..., resume=True))", _interrupted),
    Case("interrupted-cli", "SIGINT / SIGTERM while `pyro-air train` trains", "exit 130 / 143",
         "pyro-air: interrupted at epoch 1 step 6; continue with: pyro-air train --resume …/run", _interrupted_cli),
]
