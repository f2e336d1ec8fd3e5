"""The run directory: no run clobbered, nothing written before the options are checked, stale
temporaries cleaned, and file-system faults as `pyro-air: error: ...` (exit 2) with nothing lost.

Tests run as root here, where chmod does not stop writes: the read-only and disk-full cases are
simulated by making the file-system call raise the OSError the kernel would give (EROFS / ENOSPC).
"""
import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from pyro_air.cli import main
from pyro_air.train import checkpoints as checkpoint
from pyro_air.train import run_dir
from tests import signal_worker
from tests.helpers import assert_same_run


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return signal_worker.write_tiny_amat(tmp_path_factory.mktemp("amat"))


def _train(data_dir, run, *extra):
    return main(signal_worker.train_args(data_dir) + ["--run-dir", str(run), *extra])


def _digests(run: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert _train(data_dir, run) == 0
    return run


def test_non_empty_run_dir_is_refused_and_overwrite_moves_it_aside(tmp_path, data_dir, finished_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digests(run)
    assert _train(data_dir, run) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pyro-air: error: {run} is not empty (it holds best.pt, checkpoint.pt, metrics.jsonl, "
                          "train_args.json); a new run would mix its files with those: continue it with "
                          f"`pyro-air train --resume {run}`, pass --overwrite")
    assert _digests(run) == before

    assert _train(data_dir, run, "--overwrite") == 0
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and f"moved the old run to {moved[0]}" in capsys.readouterr().out
    assert _digests(moved[0]) == before  # the old run, whole, under its new name
    assert_same_run(run, finished_run)   # and the same command trained the same run again


def test_invalid_option_changes_nothing_and_the_run_still_resumes(tmp_path, data_dir, finished_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digests(run)
    assert _train(data_dir, run, "--batch-size", "0") == 2
    assert main(["train", "--resume", str(run), "--batch-size", "0"]) == 2
    errs = capsys.readouterr().err.splitlines()
    assert errs == ["pyro-air: error: batch_size must be an integer >= 1, got 0"] * 2
    assert _digests(run) == before  # train_args.json included
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, finished_run)


def test_stale_temporary_files_are_removed_on_the_next_start(tmp_path, data_dir, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for name in (".checkpoint.pt.x1y2z3.tmp", ".best.pt.abc.tmp", ".metrics.jsonl.tmp"):
        (run / name).write_bytes(b"half a checkpoint")  # what a SIGKILL during a write leaves
    assert main(["train", "--resume", str(run)]) == 0
    # and a finished run leaves no .lock behind (issue 36)
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "checkpoint.pt", "metrics.jsonl", "train_args.json"]


def test_run_dir_that_is_a_file(tmp_path, data_dir, capsys):
    path = tmp_path / "run"
    path.write_text("notes")
    assert _train(data_dir, path) == 2
    assert capsys.readouterr().err == (f"pyro-air: error: {path} is a file, not a directory; pass a directory for "
                                       f"the run (e.g. --run-dir {path}-run), or move the file away\n")
    assert path.read_text() == "notes"


def test_run_dir_that_is_a_dangling_symlink(tmp_path, data_dir, capsys):
    path = tmp_path / "run"
    path.symlink_to(tmp_path / "gone")
    assert _train(data_dir, path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pyro-air: error: {path} is a symbolic link to {tmp_path / 'gone'}, which does not exist; "
                          "create that directory, remove the link")
    assert path.is_symlink() and not (tmp_path / "gone").exists()


def test_metrics_file_that_is_a_symlink_is_refused(tmp_path, finished_run, capsys):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere.jsonl"
    shutil.copytree(finished_run, run)
    elsewhere.write_text("someone else's metrics\n")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(elsewhere)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pyro-air: error: {run / 'metrics.jsonl'} is a symbolic link (to {elsewhere}); pyro-air "
                          "writes a run's files only as regular files inside its run directory")
    assert "Traceback" not in err and elsewhere.read_text() == "someone else's metrics\n"


def test_read_only_location(tmp_path, data_dir, monkeypatch, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    if os.geteuid() != 0:
        parent.chmod(0o500)
        reason = "Permission denied"
    else:  # root writes anyway: make mkdir fail as on a read-only mount
        def read_only(self, *args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

        monkeypatch.setattr(Path, "mkdir", read_only)
        reason = os.strerror(errno.EROFS)
    assert _train(data_dir, parent / "run") == 2
    assert capsys.readouterr().err == (f"pyro-air: error: could not create the run directory ({parent / 'run'}: "
                                       f"{reason}); use a run directory on a writable file system, or fix its "
                                       "permissions.\n")
    assert list(parent.iterdir()) == []


def test_disk_full_keeps_the_last_checkpoint_and_the_run_resumes_exactly(tmp_path, data_dir, finished_run,
                                                                        monkeypatch, capsys):
    run, real_save, calls = tmp_path / "run", torch.save, []

    def full_disk_on_third(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # saves: step 4, step 8, best.pt of epoch 1 <- the disk is full
            f.write(b"\0" * 10)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_on_third)
    assert _train(data_dir, run) == 2
    monkeypatch.setattr(torch, "save", real_save)
    err = capsys.readouterr().err
    assert err == (f"pyro-air: error: could not write the best parameters ({run / 'best.pt'}: No space left on "
                   "device); free disk space (or move the run directory to a larger disk). The run directory keeps "
                   f"its last complete checkpoint; then continue with: pyro-air train --resume {run} (or fit(..., "
                   "resume=True)).\n")
    assert checkpoint.load(run)["step"] == 8  # nothing lost: the last good checkpoint is whole
    assert not list(run.glob(".*.tmp"))
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, finished_run)


def test_append_line_leaves_no_half_line_when_the_disk_fills(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n')
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        run_dir.append_line(path, '{"epoch": 2}')
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_text() == '{"epoch": 1}\n'


def test_append_line_on_a_full_disk_leaves_no_empty_file_it_created(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        run_dir.append_line(path, '{"epoch": 1}')
    assert not path.exists()  # not a 0-byte metrics.jsonl


def test_fit_refuses_a_directory_that_holds_a_run(tmp_path):
    from pyro_air.train.run_dir import RunDirError
    from tests.helpers import tiny_run

    tiny_run(tmp_path, epochs=1)
    with pytest.raises(RunDirError, match=r"already holds a run \(checkpoint.pt, best.pt, metrics.jsonl\); resume it "
                                          r"with fit\(\.\.\., resume=True\)"):
        tiny_run(tmp_path, epochs=1)


def test_a_released_claim_removes_its_lock_file_and_a_new_claim_makes_one(tmp_path):
    """issue 36: a finished run kept its .lock. Released: gone; claimed again: there, and exclusive."""
    from pyro_air.train import run_dir as run_dirs

    run = tmp_path / "run"
    with run_dirs.claim(run):
        assert (run / run_dirs.LOCK_NAME).is_file()
        with run_dirs.claim(run):  # re-entrant in one process: the inner release keeps the lock
            pass
        assert (run / run_dirs.LOCK_NAME).is_file()
    assert not (run / run_dirs.LOCK_NAME).exists() and not run_dirs.is_locked(run)
    with run_dirs.claim(run):
        assert (run / run_dirs.LOCK_NAME).read_text().startswith("pid ")
