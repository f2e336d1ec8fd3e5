"""`pyro-air train` at a tiny budget in a subprocess that pauses at a known step (signal and lock tests).

    python -m tests.signal_worker RUN_DIR DATA_DIR --pause-at-step S

Runs the real CLI (``pyro_air.cli.main(train_args(DATA_DIR) + ["--run-dir", RUN_DIR])``, on the
small .amat files ``write_tiny_amat`` puts in DATA_DIR) with the objective wrapped
so that its S-th loss writes RUN_DIR/paused and waits - until a signal has been handled (the
training loop's handler, once it fires, puts the previous handler back, which the wait sees) or
until RUN_DIR/continue exists. So a test can signal the process in the middle of step S, or hold it
there while it tries a second trainer on the same directory.
"""
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from pyro_air.cli import commands
from pyro_air.cli import main as cli_main

STEPS_PER_EPOCH = 10  # 200 images, batch 20; 2 epochs; a checkpoint every 4 steps


def train_args(data_dir) -> list:
    return ["train", "--dataset", "mnist-amat", "--data-dir", str(data_dir), "--epochs", "2", "--batch-size", "20",
            "--z-dim", "2", "--hidden", "16", "--valid-size", "30", "--valid-num-samples", "5",
            "--checkpoint-every-steps", "4", "--seed", "7", "--no-progress",
            # One thread everywhere: the subprocess and the in-process reference must run the same
            # command; matrix products at 1 and 2 threads differ in rounding on some CPUs (Intel Xeon).
            "--threads", "1"]


def write_tiny_amat(directory: Path) -> Path:
    """200 / 30 / 30 random binary images as binarized-MNIST .amat files (the 50k MNIST costs seconds to load)."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 200), ("valid", 30), ("test", 30)):
        rows = torch.bernoulli(torch.full((n, 784), 0.3), generator=gen).int().tolist()
        (directory / f"binarized_mnist_{split}.amat").write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))
    return directory


class PauseAt:
    """Delegates to an objective; its ``step``-th loss pauses (see the module docstring)."""

    def __init__(self, objective, step: int, run_dir: Path):
        self.objective, self.step, self.run_dir, self.calls = objective, step, run_dir, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.step:
            handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
            (self.run_dir / "paused").write_text(str(self.step))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (self.run_dir / "continue").exists():
                if [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] != handlers:
                    break  # a signal was handled
                time.sleep(0.02)
        return self.objective.differentiable_loss(*args, **kwargs)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_dir, data_dir, pause_at = Path(argv[0]), argv[1], int(argv[argv.index("--pause-at-step") + 1])
    build_run = commands.build_run

    def build_with_pause(spec, seed=None):
        model, guide, objective = build_run(spec, seed=seed)
        return model, guide, PauseAt(objective, pause_at, run_dir)

    commands.build_run = build_with_pause
    return cli_main(train_args(data_dir) + ["--run-dir", str(run_dir)])


if __name__ == "__main__":
    sys.exit(main())
