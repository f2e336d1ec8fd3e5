"""Benchmark cases that run in a process of their own, called one by one from the interleaved timer.

Why: some settings are process-wide and cannot be undone - pyro-air's malloc thresholds
(``pyro_air.backend.allocator``) stay once ``fit`` or an evaluation has run. A case that must run
without them (a typical user's loop in the user's own process, or pyro-air with
``PYRO_AIR_MALLOC=system``) gets a persistent worker process started with the ``spawn`` method and
the environment it needs; ``RemoteCase`` is then an ordinary zero-argument callable for
``benchmarks.timing.interleave``: each call sends "run once" down a pipe and waits for the answer,
so only one process computes at a time and the cases still alternate round by round. The pipe
round trip (~0.1 ms) is counted in the wall time, negligible beside the calls timed this way
(0.1 s and more). ``cpu_clock()`` gives the worker's process CPU time, which ``interleave`` uses
for its CPU-time column instead of the parent's.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import time


def _serve(conn, factory, args, threads):
    import torch
    torch.set_num_threads(threads)
    try:
        case = factory(*args)
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", 0.0))
    while conn.recv() == "call":
        c0 = time.process_time()
        try:
            case()
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()  # the call is over when the device's work is
        except BaseException as error:  # noqa: BLE001
            conn.send(("error", f"{type(error).__name__}: {error}"))
            return
        conn.send(("done", time.process_time() - c0))


@contextlib.contextmanager
def _environment(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RemoteCase:
    """``factory(*args)`` builds the case in a fresh worker process (``env`` added to its
    environment, ``threads`` torch threads); calling this object runs the case there once."""

    def __init__(self, factory, *args, threads: int, env: dict | None = None):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        with _environment(env or {}):
            self.process = context.Process(target=_serve, args=(child, factory, args, threads), daemon=True)
            self.process.start()
        child.close()
        self._cpu = 0.0
        self._answer("ready")

    def _answer(self, expected: str) -> float:
        try:
            kind, value = self.conn.recv()
        except EOFError:  # the worker died without a word (killed, or a crash in the interpreter)
            self.process.join(timeout=10)
            kind, value = "error", f"the worker process exited (code {self.process.exitcode}) before answering"
        if kind == "error":
            self.close()
            raise RuntimeError(f"benchmark worker failed: {value}")
        assert kind == expected, (kind, expected)
        return value

    def __call__(self):
        self.conn.send("call")
        self._cpu += self._answer("done")

    def cpu_clock(self) -> float:
        """The worker's CPU seconds spent in calls so far (all its threads)."""
        return self._cpu

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conn.send("stop")
            self.process.join(timeout=10)
            if self.process.is_alive():  # still exiting after 10 s (a loaded machine): end it, and wait
                self.process.kill()      # until it is gone, so a closed case never has a live process
                self.process.join()
        self.conn.close()


def close_all(cases: dict) -> None:
    for case in cases.values():
        if isinstance(case, RemoteCase):
            case.close()
