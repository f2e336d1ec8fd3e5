"""SIGINT / SIGTERM mid-epoch end `pyro-air train` with a checkpoint, a message and 130 / 143; the
resume ends bit-identical to an uninterrupted run. One writer per run directory: a second trainer
is refused while the first runs, and the first finishes unharmed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyro_air.cli import main
from pyro_air import storage as checkpoint
from tests import signal_worker
from tests.helpers import assert_same_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
PAUSE_AT = signal_worker.STEPS_PER_EPOCH + 3  # epoch 2, its 3rd step; the last periodic checkpoint is at step 12


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return signal_worker.write_tiny_amat(tmp_path_factory.mktemp("amat"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The uninterrupted run, trained in this process by the same command."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(signal_worker.train_args(data_dir) + ["--run-dir", str(run)]) == 0
    return run


def _paused_worker(run: Path, data_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tests.signal_worker", str(run), str(data_dir), "--pause-at-step",
                             str(PAUSE_AT)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "paused").exists():
        if proc.poll() is not None:
            pytest.fail(f"the worker ended before its pause: {proc.communicate()}")
        assert time.monotonic() < deadline, "the worker never reached its pause"
        time.sleep(0.05)
    (run / "paused").unlink()  # not a file of the run: the resume's comparison must not see it
    return proc


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_epoch_checkpoints_and_the_resume_is_bit_identical(tmp_path, data_dir, reference, sig, code):
    run = tmp_path / "run"
    proc = _paused_worker(run, data_dir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"pyro-air: interrupted at epoch 2 step {PAUSE_AT}; continue with: pyro-air train --resume {run}" in err
    assert "Traceback" not in err
    state = checkpoint.load(run)  # the step in progress was finished, then saved (not the periodic step-12 one)
    assert (state["epoch"], state["step"], state["position"]["batch"]) == (1, PAUSE_AT, 3)

    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, reference)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_second_trainer_is_refused_and_the_first_finishes_unharmed(tmp_path, data_dir, reference, capsys):
    run = tmp_path / "run"
    proc = _paused_worker(run, data_dir)
    try:
        before = sorted(p.name for p in run.iterdir())
        assert main(["train", "--resume", str(run)]) == 2
        err = capsys.readouterr().err
        assert f"pyro-air: error: {run} is being written by another process (pid {proc.pid} on" in err
        assert "one writer at a time" in err
        assert main(signal_worker.train_args(data_dir) + ["--run-dir", str(run), "--overwrite"]) == 2  # may not move it away either
        assert "is being written by another process" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == before
    finally:
        (run / "continue").write_text("")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (run / "continue").unlink()
    assert_same_run(run, reference)


# -- issue 34: interrupts at any moment end with one line --------------------------------------------
def test_a_signal_ignored_on_entry_stays_ignored():
    """A job started with `&` by a non-interactive shell ignores SIGINT; training must not start catching it."""
    from pyro_air.train.signals import StopRequests

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopRequests() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class _CtrlCTwiceInSave:
    """Stands in for io.BytesIO in checkpoints.atomic_save: in the ``save``-th save, at its 3rd write, the
    user presses Ctrl-C twice (two SIGINTs to this process: the first is recorded, the second aborts)."""

    saves = 0

    def __init__(self, save):
        import io
        type(self).saves += 1
        self.inner, self.writes, self.fire = io.BytesIO(), 0, type(self).saves == save

    def write(self, data):
        self.writes += 1
        if self.fire and self.writes == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_ctrl_c_inside_torchs_writer_is_an_interrupt_and_the_old_file_stays(tmp_path, monkeypatch):
    import torch

    path = checkpoint.atomic_save({"format_version": 2, "w": torch.ones(3)}, tmp_path / "checkpoint.pt")
    before = path.read_bytes()
    _CtrlCTwiceInSave.saves = 0
    monkeypatch.setattr(checkpoint, "BytesIO", lambda: _CtrlCTwiceInSave(1))
    with pytest.raises(KeyboardInterrupt):  # not torch's "[enforce fail at inline_container.cc:672]" RuntimeError
        checkpoint.atomic_save({"format_version": 2, "w": torch.zeros(1000)}, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


def test_a_double_ctrl_c_during_a_checkpoint_ends_with_one_line_and_the_resume_hint(tmp_path, data_dir, reference,
                                                                                    monkeypatch, capsys):
    run = tmp_path / "run"
    _CtrlCTwiceInSave.saves = 0
    monkeypatch.setattr(checkpoint, "BytesIO", lambda: _CtrlCTwiceInSave(2))  # the save at step 8
    assert main(signal_worker.train_args(data_dir) + ["--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    assert err == (f"pyro-air: interrupted (a second signal aborts at once); continue from the last checkpoint with: "
                   f"pyro-air train --resume {run}\n")
    assert checkpoint.load(run)["step"] == 4 and not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, reference)


def test_ctrl_c_outside_training_prints_interrupted(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    from pyro_air.cli import zoo_commands
    monkeypatch.setattr(zoo_commands, "cmd_zoo_list", interrupted)
    monkeypatch.setattr(sys.modules["pyro_air.cli.main"], "cmd_zoo_list", interrupted, raising=False)
    assert main(["zoo", "list"]) == 130
    assert capsys.readouterr().err == "pyro-air: interrupted\n"
