"""Detecting a non-finite training loss without a host synchronization on every step.

Each step's loss (a 0-d tensor on the training device) is written into a small on-device window
``losses[i] = loss.detach()`` - no synchronization. Every ``check_every`` steps, and always before
a checkpoint is written, one ``torch.isfinite`` over the window is copied to the host (one sync);
a non-finite entry names the exact step at which the loss first went bad.

- On CPU there is no device to wait for, so the default is ``check_every = 1``: the bad loss is
  seen before ``optimizer.step()`` and the parameters are never touched by it.
- On CUDA the default is ``check_every = 50``: the optimizer may take up to 49 steps on NaN
  gradients before the check, so recovery does not trust the current parameters - it restores
  the last good state (the last checkpoint, whose parameters were checked finite before it was
  written; see ``pyro_air.train``).

The check also covers the parameters at checkpoint time (``parameters_finite``): a finite loss
with infinite gradients makes NaN parameters that the next loss reveals, but a checkpoint is
never written with them.
"""
from __future__ import annotations

import math

import torch

DEFAULT_CHECK_EVERY = {"cpu": 1, "cuda": 50}


class NonFiniteLossError(FloatingPointError):
    """The training loss (or the parameters) became NaN or infinite."""


def default_check_every(device: torch.device) -> int:
    return DEFAULT_CHECK_EVERY.get(device.type, 1)


class LossWindow:
    """Per-step losses held until the next check: on the device, or as host floats on the CPU (there
    a loss is already computed when it is recorded, so reading it costs no wait, and a Python float
    is much cheaper per step than an indexed store plus an ``isfinite`` pass: docs/performance.md,
    "Measurements behind the code")."""

    def __init__(self, size: int, device: torch.device, on_host: bool | None = None):
        self.size = size
        self.on_host = torch.device(device).type == "cpu" if on_host is None else on_host
        self.losses = [] if self.on_host else torch.zeros(size, device=device)
        self.first_step = 0  # global step number of the first loss since the last check
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count == self.size

    def record(self, step: int, loss: torch.Tensor) -> None:
        if self.count == 0:
            self.first_step = step
            if self.on_host:
                self.losses.clear()
        if self.on_host:
            self.losses.append(loss.item())
        else:
            self.losses[self.count] = loss.detach()
        self.count += 1

    def first_bad_step(self) -> tuple[int, float] | None:
        """(step, value) of the first non-finite loss since the last check, or None; one sync."""
        if self.count == 0:
            return None
        count, self.count = self.count, 0
        if self.on_host:
            bad = [i for i, v in enumerate(self.losses[:count]) if not math.isfinite(v)]
            return (self.first_step + bad[0], self.losses[bad[0]]) if bad else None
        window = self.losses[:count]
        bad = ~torch.isfinite(window)
        if not bool(bad.any()):
            return None
        i = int(bad.nonzero()[0])
        return self.first_step + i, float(window[i])


def parameters_finite(params) -> bool:
    """All parameters finite (one sync)."""
    return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


def nonfinite_message(step: int, value: float | None, epoch: int, lr: float, last_good_step: int,
                      where: str, what: str = "loss", resumable: bool = True) -> str:
    """The message of ``NonFiniteLossError``; ``resumable``: a checkpoint of the last good state exists
    (otherwise the advice is to start again, not to resume from a file that was never written)."""
    shown = "non-finite parameters" if value is None else f"a non-finite {what} ({value})"
    advice = ("Resume from it with a lower learning rate (pyro-air train --resume RUN --lr LOWER)"
              if resumable else "Start again with a lower learning rate")
    return (
        f"training produced {shown} at step {step} (epoch {epoch + 1}). Likely causes: a learning "
        f"rate too high (lr={lr:.3g}: lower --lr), bad data (NaN/inf or values outside the likelihood's "
        f"support), or an unstable objective or encoder (extreme importance weights, a scale that "
        f"collapsed to 0). The last good state (step {last_good_step}) is kept {where}; nothing with "
        f"NaN parameters was saved. {advice}, or train with "
        f"on_nonfinite='rollback' to roll back and lower the learning rate automatically."
    )
