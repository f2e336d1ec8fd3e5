"""Checkpoint files (pyro_air/storage.py, which pyro_air/train/checkpoints.py re-exports): a full disk anywhere in a save is Python's ENOSPC
OSError - the run's one-line "No space left on device" refusal - with nothing truncated, and a file
holding code is refused in one line that names it, without running anything.

The full disk is the kernel's own: the temporary file of the save is opened on /dev/full, whose every
write fails with ENOSPC (no simulated exception)."""
import io
import os
import pickle
import tempfile

import pytest
import torch

from pyro_air.cli import main
from pyro_air import storage as ckpt_io
from tests import signal_worker

REAL_MKSTEMP = tempfile.mkstemp
pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


class Payload:
    """Unpickling this calls print: what a malicious file would do with os.system."""

    def __reduce__(self):
        return (print, ("a pickle payload ran",))


def on_dev_full(monkeypatch, after: int = 0):
    """Temporary files of atomic saves after the first ``after`` are opened on /dev/full."""
    real, calls = REAL_MKSTEMP, []

    def mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        calls.append(name)
        if len(calls) > after:
            os.close(fd)
            os.unlink(name)
            return os.open("/dev/full", os.O_WRONLY), name
        return fd, name

    monkeypatch.setattr(ckpt_io.tempfile, "mkstemp", mkstemp)


def test_a_full_disk_in_a_save_is_enospc_and_the_old_file_stays(tmp_path, monkeypatch):
    path = ckpt_io.atomic_save({"format_version": 2, "w": torch.arange(5.0)}, tmp_path / "checkpoint.pt")
    before = path.read_bytes()
    on_dev_full(monkeypatch)
    with pytest.raises(OSError) as info:
        ckpt_io.atomic_save({"format_version": 2, "w": torch.zeros(200_000)}, path)
    assert info.value.errno == 28 and path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return signal_worker.write_tiny_amat(tmp_path_factory.mktemp("amat"))


def test_train_on_a_full_disk_says_so_in_one_line_and_a_resume_changes_nothing(tmp_path, data_dir, monkeypatch,
                                                                               capsys):
    run = tmp_path / "run"
    on_dev_full(monkeypatch, after=3)  # train_args.json, checkpoints at steps 4 and 8; then the disk is full
    assert main(signal_worker.train_args(data_dir) + ["--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "enforce fail" not in err
    assert f"continue with: pyro-air train --resume {run}" in err
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    assert ckpt_io.load(run)["step"] == 8
    on_dev_full(monkeypatch, after=0)  # still full: the resume is refused the same way and truncates nothing
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files  # metrics.jsonl included (no 0-byte file)


def test_a_checkpoint_holding_code_is_refused_in_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format_version": 2, "payload": Payload()}, path)
    with pytest.raises(ckpt_io.CheckpointError) as info:
        ckpt_io.load(path)
    message = str(info.value)
    assert message == (f"{path} is not a readable checkpoint: it holds a reference to print, not only tensors and "
                       "plain values, so it was not loaded (loading it could run code). It was not written by pyro-air "
                       "as it is: use a file from a source you trust, or train again")
    assert "a pickle payload ran" not in capsys.readouterr().out


def test_a_plain_pickle_with_an_unknown_instruction_is_one_line_too(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"format_version": 2, "x": Payload()}, protocol=4))
    with pytest.raises(ckpt_io.CheckpointError) as info:
        ckpt_io.load(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path} is not a readable checkpoint")


def test_a_format_version_of_the_wrong_type_is_refused(tmp_path):
    path = ckpt_io.atomic_save({"format_version": "2"}, tmp_path / "checkpoint.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="is not a pyro-air checkpoint \\(no integer format_version\\)"):
        ckpt_io.load(path)


def test_a_save_writes_the_bytes_torch_save_writes(tmp_path):
    obj = {"format_version": 2, "w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    assert ckpt_io.atomic_save(obj, tmp_path / "c.pt").read_bytes() == buffer.getvalue()
