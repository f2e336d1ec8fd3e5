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
from pyro_air.train import checkpoints as checkpoint
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
