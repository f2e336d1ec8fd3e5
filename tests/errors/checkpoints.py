"""Checkpoints and resuming: checkpoint files and resuming a run.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
from pathlib import Path

import torch

from tests.errors.table import Case, cli, raised

TITLE = "Checkpoints and resuming"


def _other_config(tmp, mp):
    from pyro_air.train import checkpoints as checkpoint
    stored = {"format_version": 2, "spec": {}, "train_config": {"seed": 3, "lr": 0.02}}
    return raised(checkpoint.check_same_run, stored, tmp / "checkpoint.pt", {}, {"seed": 4, "lr": 0.02})


def _cli_changed_option(tmp, mp):
    from tests.signal_worker import train_args, write_tiny_amat
    data_dir = tmp / "data"
    data_dir.mkdir()
    failure = cli(*train_args(write_tiny_amat(data_dir)), "--epochs", "1", "--run-dir", tmp / "run")
    assert failure.code == 0, failure.stderr
    return cli("train", "--resume", tmp / "run", "--epochs", "2")


def _newer_format(tmp, mp):
    from pyro_air.train import checkpoints as checkpoint
    checkpoint.atomic_save({"format_version": checkpoint.FORMAT_VERSION + 1}, tmp / "checkpoint.pt")
    return raised(checkpoint.load, tmp)


def _corrupt_checkpoint(tmp, mp):
    from pyro_air.train import checkpoints as checkpoint
    (tmp / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    return raised(checkpoint.load, tmp)


def _code_in_checkpoint(tmp, mp):
    from pyro_air.train import checkpoints as checkpoint
    torch.save({"format_version": 1, "payload": Path("x")}, tmp / "checkpoint.pt")
    return raised(checkpoint.load, tmp)


def _binary_garbage_checkpoint(tmp, mp):
    from pyro_air.train import checkpoints as checkpoint
    (tmp / "checkpoint.pt").write_bytes(b"\x80\x02garbage that is no pickle")
    return raised(checkpoint.load, tmp)


CASES = [
    Case("resume-other-configuration", "resuming a checkpoint written for another configuration", "CheckpointError",
         "…/checkpoint.pt was written by a run with a different configuration; these keys differ: "
         "train_config.seed: 3 in the checkpoint, 4 requested. Resume with the configuration stored in the "
         "checkpoint (e.g. `pyro-air train --resume RUN_DIR` with no other options), or start a new run in a new run "
         "directory.", _other_config),
    Case("cli-resume-changed-option", "`pyro-air train --resume RUN_DIR` with an option that changes the result "
         "(only those of `RESUME_MAY_CHANGE` may differ: see docs/runs.md)", "exit 2",
         "pyro-air: error: …/checkpoint.pt was written by a run with a different configuration; these keys differ: "
         "train_config.epochs: 1 in the checkpoint, 2 requested. Resume with …", _cli_changed_option),
    Case("newer-checkpoint-format", "a checkpoint of a newer format version", "CheckpointError",
         "…/checkpoint.pt has checkpoint format 3, newer than this pyro-air reads (2); upgrade pyro-air",
         _newer_format),
    Case("corrupt-checkpoint", "a corrupt checkpoint file", "CheckpointError",
         "…/checkpoint.pt is not a readable checkpoint (…)", _corrupt_checkpoint),
    Case("garbage-checkpoint", "a checkpoint file that is not a pickle at all", "CheckpointError",
         "…/checkpoint.pt is not a readable checkpoint (the safe loader stopped at: Unsupported operand 103); it is "
         "damaged or was not written by torch.save, and nothing of it was run: use the file as pyro-air wrote it, or "
         "train again", _binary_garbage_checkpoint),
    Case("code-in-checkpoint", "a checkpoint holding objects other than tensors and plain values", "CheckpointError",
         "…/checkpoint.pt is not a readable checkpoint: it holds a reference to pathlib.PosixPath, not only tensors "
         "and plain values, so it was not loaded (loading it could run code). It was not written by pyro-air as it "
         "is: use a file from a source you trust, or train again",
         _code_in_checkpoint),
]
