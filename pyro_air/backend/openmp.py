"""Per-thread CPU state on every thread of torch's OpenMP pool (the flush-to-zero bits of MXCSR).

Why this exists: ``torch.set_flush_denormal`` changes the floating-point control register of the
*calling* thread only. torch's elementwise kernels and matrix products run on an OpenMP team; the
calling thread does one share of the work and the pool's other threads the rest, with whatever mode
they had when they were created. Measured (2 threads, torch 2.13.0+cpu): after
``set_flush_denormal(True)``, ``x * 1.0`` on ten million denormal floats left exactly half of them
nonzero - the other thread's half. So flushing on the main thread alone flushed half of every
elementwise kernel's work, and which values became 0 depended on how the work was split. (Speed
changed little where it was measured: the slow denormal arithmetic ran on the calling thread;
docs/performance.md, "Measurements behind the code", "Denormals".)

What it does: ``on_every_thread(fn, n)`` opens one OpenMP parallel region of ``n`` threads through
libgomp's entry point ``GOMP_parallel(fn, data, num_threads, flags)`` (the call a ``#pragma omp
parallel`` compiles to, stable in GCC's libgomp since 4.9) in the libgomp that torch itself loaded,
and runs ``fn`` once on each of them: the calling thread is thread 0 and the others are the pool's
threads, which libgomp reuses for later regions (torch's included). ``fn`` is a Python callable
wrapped by ctypes; each thread takes the GIL to run it. Threads created later (a larger team)
inherit the creating thread's mode, as POSIX threads inherit the floating-point environment.

Where torch uses another OpenMP runtime (LLVM's libomp or Intel's libiomp on some builds, none on
some platforms), ``pool_runtime()`` is None and nothing is done beyond the calling thread;
``pyro_air.backend.report.kernel_report()`` says which case holds.

``denormals_flushed()`` is the context that uses it (training steps and evaluations run inside it).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

import torch

_runtime: list = []  # [ctypes.CDLL | None], filled on first use
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _loaded_libgomp() -> str | None:
    """Path of the libgomp this process has loaded (torch's own copy), or None."""
    torch.get_num_threads()  # torch's CPU library, and with it its OpenMP runtime, is loaded by now
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if line.split() else ""
            if os.path.basename(path).startswith("libgomp") and ".so" in path:
                return path
    except OSError:
        pass
    return None


def pool_runtime():
    """torch's libgomp as a ctypes library with ``GOMP_parallel``, or None (module docstring)."""
    if not _runtime:
        lib = None
        path = _loaded_libgomp()
        if path is not None:
            try:
                lib = ctypes.CDLL(path)  # already loaded: the same instance, not a second copy
                lib.GOMP_parallel.argtypes = [_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                lib.GOMP_parallel.restype = None
            except (OSError, AttributeError):
                lib = None
        _runtime.append(lib)
    return _runtime[0]


def on_every_thread(fn, threads: int) -> bool:
    """Run ``fn()`` once on each of ``threads`` threads of torch's OpenMP pool (the caller included).
    False, having run it on the calling thread only, where torch's runtime is not libgomp."""
    lib = pool_runtime()
    if lib is None or threads <= 1:
        fn()
        return lib is not None
    errors = []

    def body(_):
        try:
            fn()
        except BaseException as e:  # an exception must not cross the C frames of the parallel region
            errors.append(e)

    callback = _CALLBACK(body)  # kept alive for the duration of the call
    lib.GOMP_parallel(callback, None, threads, 0)
    if errors:
        raise errors[0]
    return True


_largest_team = [1]  # the largest team a switch has reached in this process


def pool_size() -> int:
    """How many threads a switch must reach: the pool may hold threads beyond the current count
    (made for an earlier, larger team, and reused when the team grows again), so at least the CPU
    count and the largest team any earlier switch reached."""
    _largest_team[0] = max(_largest_team[0], torch.get_num_threads(), os.cpu_count() or 1)
    return _largest_team[0]


def set_flush_denormal_everywhere(enabled: bool) -> bool:
    """``torch.set_flush_denormal(enabled)`` on every thread of torch's pool; returns whether the
    CPU supports flushing (torch's own answer, from the calling thread)."""
    supported = []
    on_every_thread(lambda: supported.append(torch.set_flush_denormal(enabled)), pool_size())
    return bool(supported[-1]) if supported else False


# -- denormals flushed to zero on every pool thread ---------------------------------------------
_flush_depth = 0


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True):
    """Inside: denormal floats are flushed to zero on the CPU (where supported), restored after.

    Why: normalized importance weights and their gradients underflow into the denormal range, and
    GEMMs on denormals are many times slower on x86 (benchmarks/RESULTS.md measures an IWAE-8 step
    from initialization; docs/performance.md, "Measurements behind the code", "Denormals"). Values
    below 1.2e-38 become 0, which changes no log-likelihood, bound or gradient beyond float rounding
    (tests/test_backend.py). Nested uses are counted, so an inner block does not end an outer one.

    The mode is set on every thread of torch's OpenMP pool, not only the calling one
    (``set_flush_denormal_everywhere`` above): torch's own switch reaches the calling thread alone, which at 2
    threads left half of every kernel's work unflushed.
    """
    global _flush_depth
    if not enabled:
        yield
        return
    if _flush_depth == 0:
        set_flush_denormal_everywhere(True)
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0:
            set_flush_denormal_everywhere(False)


def flush_denormals_supported() -> bool:
    """Whether this CPU can flush denormal floats to zero (SSE3 and later x86; torch reports it)."""
    supported = torch.set_flush_denormal(True)
    if _flush_depth == 0:
        torch.set_flush_denormal(False)
    return bool(supported)


def denormal_flush_reach() -> str:
    """Which threads a flush reaches: "every pool thread" (torch's OpenMP runtime is libgomp) or
    "calling thread only" (another runtime; module docstring)."""
    return "every pool thread" if pool_runtime() is not None else "calling thread only"
