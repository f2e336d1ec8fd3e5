"""SIGINT and SIGTERM end training cleanly: the current step finishes, a checkpoint is written.

Why not the default: SIGINT raises ``KeyboardInterrupt`` wherever the process happens to be (in
the middle of an optimizer step, between a step and its bookkeeping) and SIGTERM kills it outright,
so the run loses everything since its last periodic checkpoint. Here the handler only records the
signal; the training loop looks at it after every step, writes a checkpoint of that exact
position (mid-epoch included) and raises ``TrainingInterrupted``. A resume continues from it and
ends with the parameters an uninterrupted run ends with (bit-identical on CPU).

A second signal of the same kind is not caught again (the previous handler is back in place as
soon as the first arrives): press Ctrl-C twice to abort at once. Handlers are installed only in the
main thread of a single-process run (Python can only set them there; under ``torchrun`` the ranks
would stop at different steps, so distributed runs keep the default behaviour and resume from
their last periodic checkpoint). A signal the process ignored on entry (SIGINT of a job started with
``&`` by a non-interactive shell, ``nohup``) stays ignored.
"""
from __future__ import annotations

import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as a shell reports them


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped at a signal after saving its position (a KeyboardInterrupt, as Ctrl-C is)."""

    def __init__(self, signum: int, epoch: int, step: int, checkpoint=None):
        self.signum, self.epoch, self.step, self.checkpoint = signum, epoch, step, checkpoint
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))
        saved = (f"the checkpoint {checkpoint} holds this position (resume with fit(..., resume=True))"
                 if checkpoint is not None else "nothing was saved (no run directory)")
        super().__init__(f"training interrupted by {signal.Signals(signum).name} at epoch {epoch} step {step}; {saved}")


class StopRequests:
    """Inside the block, SIGINT and SIGTERM set ``signum`` instead of interrupting (see the module docstring)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        signal.signal(signum, self._previous[signum])  # a second signal acts at once

    def __enter__(self):
        if self.enabled:
            for sig in EXIT_CODES:
                if signal.getsignal(sig) is signal.SIG_IGN:  # ignored on entry (`nohup`, a job started with `&`)
                    continue  # stays ignored: training does not start reacting to it
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
