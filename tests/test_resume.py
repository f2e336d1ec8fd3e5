"""Checkpoints: exact resume after SIGKILL mid-epoch, atomic writes, refusing other configurations."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.cli import main
from pyro_air.train import RESUME_MAY_CHANGE, TrainConfig, fit, run_dir
from pyro_air.train import checkpoints as checkpoint
from pyro_air.train.checkpoints import CheckpointError
from pyro_air.train.signals import TrainingInterrupted
from tests import resume_worker
from tests.helpers import assert_same_run, tiny_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


class SimulatedCrash(BaseException):
    """Stands for the process dying in the middle of a write (like KeyboardInterrupt, not an Exception)."""


def _worker(run_dir, *extra):
    return subprocess.Popen([sys.executable, "-m", "tests.resume_worker", str(run_dir), *extra], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    pause_at = resume_worker.STEPS_PER_EPOCH + 7  # epoch 2, batch 7; last checkpoint at step 15 (batch 3)
    proc = _worker(killed, "--pause-at-step", str(pause_at))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker
    try:
        resume_worker.main([str(reference)])  # the uninterrupted run, in this process meanwhile
    finally:
        torch.set_num_threads(threads)
    deadline = time.monotonic() + 120
    while not (killed / "paused").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the worker never reached the pause step"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the dead process's lock file is still there, but its lock died with it: it does not block the resume
    assert (killed / run_dir.LOCK_NAME).read_text().startswith(f"pid {proc.pid} on ")
    assert not run_dir.is_locked(killed)
    state = checkpoint.load(killed)  # the mid-epoch checkpoint the killed run left
    assert (state["epoch"], state["step"], state["position"]["batch"]) == (1, 15, 3)
    assert state["position"]["order"].shape == (120,)

    _finish(_worker(killed, "--resume"))
    assert_same_run(killed, reference)
    assert checkpoint.load(killed)["step"] == 3 * resume_worker.STEPS_PER_EPOCH
    metrics = (killed / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3  # no epoch is recorded twice


def test_atomic_save_interrupted_mid_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.atomic_save({"format_version": 1, "w": torch.arange(5.0)}, path)
    real_save = torch.save

    def crash_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(20)  # half-written bytes on disk ...
        raise SimulatedCrash  # ... and the process is interrupted

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(SimulatedCrash):
        checkpoint.atomic_save({"format_version": 1, "w": torch.zeros(1000)}, path)
    assert torch.equal(checkpoint.load(path)["w"], torch.arange(5.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind


def test_training_interrupted_during_a_checkpoint_write_resumes_exactly(tmp_path, monkeypatch):
    tiny_run(tmp_path / "reference")
    real_save, calls = torch.save, []

    def crash_on_fifth(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # saves: step 5, step 10, best.pt, end of epoch 1, step 15 <- crash
            f.write(b"\x00" * 10)
            raise SimulatedCrash
        real_save(obj, f, *args, **kwargs)

    run = tmp_path / "interrupted"
    monkeypatch.setattr(torch, "save", crash_on_fifth)
    with pytest.raises(SimulatedCrash):
        tiny_run(run)
    monkeypatch.setattr(torch, "save", real_save)
    assert checkpoint.load(run)["step"] == 12  # the end-of-epoch checkpoint before the failed write
    tiny_run(run, resume=True)
    assert_same_run(run, tmp_path / "reference")


def test_resume_refuses_a_different_configuration(tmp_path):
    tiny_run(tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match=r"(?s)these keys differ:.*train_config\.seed: 3 in the checkpoint, "
                                              r"4 requested.*start a new run"):
        tiny_run(tmp_path, resume=True, epochs=1, seed=4)
    tiny_run(tmp_path, resume=True, epochs=1, checkpoint_every_steps=3)  # does not change the result: allowed


def test_newer_checkpoint_format_is_refused(tmp_path):
    checkpoint.atomic_save({"format_version": checkpoint.FORMAT_VERSION + 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="newer than this pyro-air reads.*upgrade pyro-air"):
        checkpoint.load(tmp_path)


def test_corrupt_checkpoint_is_refused(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path)


def test_checkpoint_with_code_in_it_is_refused(tmp_path):
    torch.save({"format_version": 1, "payload": Path("x")}, tmp_path / "checkpoint.pt")  # not a weights-only type
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path)


def test_cli_resume_continues_and_refuses_changed_options(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--train-size", "100", "--epochs", "2", "--batch-size", "25", "--z-dim", "2", "--hidden", "8",
            "--valid-size", "20", "--valid-num-samples", "3", "--checkpoint-every-steps", "3", "--no-progress"]
    assert main(args + ["--run-dir", str(run), "--epochs", "1"]) == 0
    assert checkpoint.load(run)["epoch"] == 1
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "train_config.epochs: 1 in the checkpoint, 2 requested" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # the stored options, nothing to add
    assert checkpoint.load(run)["epoch"] == 1
    out = capsys.readouterr().out
    assert "had already finished at epoch 1 of 1; nothing to do" in out
    assert "trained 0 epochs" not in out and "trained 1 epochs" not in out
    best = checkpoint.load(run)["early_stopping"]["best_valid"]
    assert f"IWAE-3 {best:.2f} at epoch 1" in out  # rounded, not -180.78802490234375


def test_cli_train_prints_a_rounded_best_validation_and_no_early_stop(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--train-size", "100", "--epochs", "2", "--batch-size", "25", "--z-dim", "2", "--hidden",
                 "8", "--valid-size", "20", "--valid-num-samples", "3", "--no-progress", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    state = checkpoint.load(run)
    es = state["early_stopping"]
    assert "trained 2 epochs in" in out
    assert f"best validation IWAE-3 {es['best_valid']:.2f} at epoch {es['best_epoch']} of 2" in out
    assert "early-stopped" not in out


class CrashAt:
    """Delegates to an objective; its ``call``-th loss raises SimulatedCrash (the process dies)."""

    def __init__(self, objective, call):
        self.objective, self.call, self.calls = objective, call, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.call:
            raise SimulatedCrash
        return self.objective.differentiable_loss(*args, **kwargs)


def _policy_run(run_dir, resume=False, crash_at=None):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    objective = infer.build("iwae", num_particles=2)
    if crash_at is not None:
        objective = CrashAt(objective, crash_at)
    train_x, valid_x = resume_worker.data()
    config = TrainConfig(**{**resume_worker.CONFIG, "epochs": 5, "checkpoint_every_steps": None,
                            "checkpoint_every_epochs": 2})
    fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=resume_worker.SPEC, resume=resume)


def test_checkpoint_every_epochs_writes_fewer_checkpoints_and_resumes_exactly(tmp_path, monkeypatch):
    real_save, written = checkpoint.atomic_save, []

    def counting_save(obj, path):
        written.append((Path(path).name, obj.get("epoch")))
        return real_save(obj, path)

    monkeypatch.setattr(checkpoint, "atomic_save", counting_save)
    _policy_run(tmp_path / "reference")
    # 5 epochs, every 2: after epochs 2 and 4, and after the last (5), instead of after every epoch
    assert [epoch for name, epoch in written if name == "checkpoint.pt"] == [2, 4, 5]
    written.clear()
    steps = resume_worker.STEPS_PER_EPOCH
    with pytest.raises(SimulatedCrash):  # dies in epoch 4: epoch 3 was trained but not checkpointed
        _policy_run(tmp_path / "crashed", crash_at=3 * steps + 5)
    assert [epoch for name, epoch in written if name == "checkpoint.pt"] == [2]
    assert checkpoint.load(tmp_path / "crashed")["epoch"] == 2
    _policy_run(tmp_path / "crashed", resume=True)  # redoes epoch 3 from the epoch-2 checkpoint
    assert_same_run(tmp_path / "crashed", tmp_path / "reference")
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]


# -- which options a resume may change (RESUME_MAY_CHANGE) ------------------------------------------
class SignalAt:
    """Delegates to an objective; at its ``call``-th loss the process sends itself ``sig`` (a Ctrl-C)."""

    def __init__(self, objective, call, sig=signal.SIGINT):
        self.objective, self.call, self.sig, self.calls = objective, call, sig, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.call:
            os.kill(os.getpid(), self.sig)
        return self.objective.differentiable_loss(*args, **kwargs)


SPEC_WITH_DATA = {**resume_worker.SPEC, "data": {"data_dir": "/data/a"}}


def _run_with_spec(run_dir, spec=SPEC_WITH_DATA, resume=False, interrupt_at=None, **overrides):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    objective = infer.build("iwae", num_particles=2)
    if interrupt_at is not None:
        objective = SignalAt(objective, interrupt_at)
    train_x, valid_x = resume_worker.data()
    config = TrainConfig(**{**resume_worker.CONFIG, **overrides})
    fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=resume)


@pytest.fixture(scope="module")
def interrupted_and_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("may-change")
    with pytest.raises(TrainingInterrupted, match="interrupted by SIGINT at epoch 1 step 7"):
        _run_with_spec(base / "interrupted", interrupt_at=7)
    assert checkpoint.load(base / "interrupted")["step"] == 7  # the step in progress finished, then saved
    _run_with_spec(base / "reference")
    return base / "interrupted", base / "reference"


@pytest.mark.parametrize("key,change", [
    ("train_config.progress", {"progress": True}),
    ("train_config.checkpoint_every_steps", {"checkpoint_every_steps": 3}),
    ("train_config.on_nonfinite", {"on_nonfinite": "rollback"}),
    ("train_config.rollback_lr_factor", {"rollback_lr_factor": 0.25}),
    ("train_config.max_rollbacks", {"max_rollbacks": 1}),
    ("train_config.nonfinite_check_every", {"nonfinite_check_every": 2}),
    ("train_config.device", {"device": "cpu:0"}),
    ("spec.data.data_dir", {"spec": {**resume_worker.SPEC, "data": {"data_dir": "/moved/a"}}}),
])
def test_resume_may_change_options_that_keep_the_result(tmp_path, interrupted_and_reference, key, change):
    assert key in RESUME_MAY_CHANGE
    interrupted, reference = interrupted_and_reference
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    _run_with_spec(run, resume=True, **change)
    assert_same_run(run, reference)  # bit-identical to the uninterrupted run


def test_resume_with_a_lower_learning_rate_continues_with_it(tmp_path, interrupted_and_reference):
    """The advice of a non-finite stop: resume with a lower lr. The schedule continues, scaled."""
    interrupted, reference = interrupted_and_reference
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    lr = resume_worker.CONFIG["lr"]
    _run_with_spec(run, resume=True, lr=lr / 4)
    final, uninterrupted = checkpoint.load(run), checkpoint.load(reference)
    assert final["train_config"]["lr"] == lr / 4  # a later resume compares against the new value
    assert final["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(
        uninterrupted["optimizer_state"]["param_groups"][0]["lr"] / 4)
    assert not torch.equal(final["model_state"]["decoder.0.weight"], uninterrupted["model_state"]["decoder.0.weight"])


@pytest.mark.parametrize("change,line", [
    ({"seed": 4}, "train_config.seed: 3 in the checkpoint, 4 requested"),
    ({"batch_size": 20}, "train_config.batch_size: 10 in the checkpoint, 20 requested"),
    ({"valid_every": 2}, "train_config.valid_every: 1 in the checkpoint, 2 requested"),
])
def test_resume_refuses_options_that_change_the_run(tmp_path, interrupted_and_reference, change, line):
    run = tmp_path / "run"
    shutil.copytree(interrupted_and_reference[0], run)
    with pytest.raises(CheckpointError, match=re.escape(line)):
        _run_with_spec(run, resume=True, **change)


def test_cli_resume_with_a_lower_lr_is_accepted_and_remembered(tmp_path):
    from tests.signal_worker import train_args, write_tiny_amat

    run = tmp_path / "run"
    assert main(train_args(write_tiny_amat(tmp_path)) + ["--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--lr", "0.0005"]) == 0
    assert json.loads((run / "train_args.json").read_text())["lr"] == 0.0005
    assert main(["train", "--resume", str(run)]) == 0  # the stored options now name the new lr: nothing refused
