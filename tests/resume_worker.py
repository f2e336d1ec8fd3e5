"""A tiny training run for the kill/resume tests, run as a subprocess (one thread, deterministic).

    python -m tests.resume_worker RUN_DIR [--resume] [--pause-at-step S]

With ``--pause-at-step S`` the process writes RUN_DIR/paused when it starts step S and then
sleeps, so a test can SIGKILL it at a known point in the middle of an epoch.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit

SPEC = {"note": "resume-worker"}
CONFIG = dict(epochs=3, batch_size=10, lr=2e-2, seed=3, valid_num_samples=4, patience=5, dynamic_binarization=True,
              checkpoint_every_steps=5, progress=False)
STEPS_PER_EPOCH = 12


def data():
    gen = torch.Generator().manual_seed(11)
    return torch.rand(120, 20, generator=gen), torch.rand(30, 20, generator=gen)  # grey levels


class PauseAt:
    """Delegates to an objective; at its ``step``-th loss it signals and sleeps until killed."""

    def __init__(self, objective, step, marker):
        self.objective, self.step, self.marker, self.calls = objective, step, marker, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.step:
            self.marker.write_text(str(self.step))
            time.sleep(600)
        return self.objective.differentiable_loss(*args, **kwargs)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--pause-at-step", type=int, default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    objective = infer.build("iwae", num_particles=2)
    if args.pause_at_step is not None:
        objective = PauseAt(objective, args.pause_at_step, Path(args.run_dir) / "paused")
    train_x, valid_x = data()
    fit(model, guide, objective, train_x, valid_x, TrainConfig(**CONFIG), run_dir=args.run_dir, spec=SPEC,
        resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
