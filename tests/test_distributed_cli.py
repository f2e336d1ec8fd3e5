"""`pyro-air train/evaluate --distributed` under torchrun (2 processes, gloo, tiny budget)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_air.cli import main
from pyro_air.support.parallel import TORCHRUN_ENV
from pyro_air.runs import evaluate_checkpoint
from pyro_air.train import checkpoints as checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**{k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV},  # torchrun sets these itself
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TRAIN = ["--dataset", "mnist-amat", "--z-dim", "2", "--hidden", "8", "--epochs", "2", "--batch-size", "20",
         "--valid-size", "20", "--valid-num-samples", "3", "--checkpoint-every-steps", "3", "--no-progress"]
EVALUATE = ["--max-points", "30", "--num-samples", "5", "--seed", "3", "--no-progress"]


def _write_tiny_amat(directory: Path) -> None:
    """100 / 20 / 30 random binary images as binarized-MNIST .amat files (loading the 50k MNIST costs seconds)."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 100), ("valid", 20), ("test", 30)):
        rows = torch.bernoulli(torch.full((n, 784), 0.3), generator=gen).int().tolist()
        (directory / f"binarized_mnist_{split}.amat").write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))


def _torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pyro_air", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _output(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return out


def test_torchrun_train_resume_and_evaluate_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    _write_tiny_amat(tmp_path)
    out = _output(_torchrun("train", *TRAIN, "--data-dir", str(tmp_path), "--run-dir", str(run), "--distributed"))
    assert out.count("trained 2 epochs") == 1, out  # only rank 0 prints
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "checkpoint.pt", "metrics.jsonl",
                                                     "train_args.json"]  # rank 0 held it, and let go of its .lock
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # one writer: one line per epoch
    state = checkpoint.load(run)
    assert state["world_size"] == 2 and len(state["per_rank"]) == 2 and state["step"] == 10

    # at the same time (they touch different files): resume with the stored options, --distributed among them
    # (every rank loads the checkpoint; nothing is left to train), and evaluate on 2 processes
    resume = _torchrun("train", "--resume", str(run))
    evaluate = _torchrun("evaluate", str(run), *EVALUATE, "--distributed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", str(run), *EVALUATE]) == 0  # meanwhile, one process
    finally:
        torch.set_num_threads(threads)
    single = capsys.readouterr().out
    assert "test (n=30)" in single
    assert _output(evaluate) == single  # the same table, printed once

    out = _output(resume)
    assert out.count("had already finished at epoch 2 of 2; nothing to do") == 1, out  # rank 0 only
    assert "trained" not in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    for key in ("model_state", "guide_state"):
        resumed = checkpoint.load(run)[key]
        assert all(torch.equal(resumed[k], state[key][k]) for k in state[key])


def test_distributed_train_without_torchrun_says_how_to_launch(tmp_path, capsys, monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert main(["train", *TRAIN, "--run-dir", str(tmp_path / "run"), "--distributed"]) == 2
    err = capsys.readouterr().err
    assert "--distributed needs the environment variables torchrun sets" in err
    assert "torchrun --standalone --nproc_per_node=2 -m pyro_air" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_distributed_evaluation_refuses_the_per_datapoint_optimization_columns(tmp_path):
    with pytest.raises(ValueError, match="does not shard iw_svi_steps .* run those columns without --distributed"):
        evaluate_checkpoint(tmp_path, distributed=True, iw_svi_steps=5)
