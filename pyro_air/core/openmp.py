"""Per-thread CPU state on every thread of torch's OpenMP pool (the flush-to-zero bits of MXCSR).

Why this exists: ``torch.set_flush_denormal`` changes the floating-point control register of the
*calling* thread only. torch's elementwise kernels and matrix products run on an OpenMP team; the
calling thread does one share of the work and the pool's other threads the rest, with whatever mode
they had when they were created. Measured (2 threads, torch 2.13.0+cpu): after
``set_flush_denormal(True)``, ``x * 1.0`` on ten million denormal floats left exactly half of them
nonzero - the other thread's half. So flushing on the main thread alone flushed half of every
elementwise kernel's work, and which values became 0 depended on how the work was split. (Speed: an
IWAE-8 training step from initialization took the same time either way on a 2-core Intel Xeon, 15.7
vs 15.9 ms, benchmarks/RESULTS-intel.md: its slow denormal arithmetic ran on the calling thread.)

What it does: ``on_every_thread(fn, n)`` opens one OpenMP parallel region of ``n`` threads through
libgomp's entry point ``GOMP_parallel(fn, data, num_threads, flags)`` (the call a ``#pragma omp
parallel`` compiles to, stable in GCC's libgomp since 4.9) in the libgomp that torch itself loaded,
and runs ``fn`` once on each of them: the calling thread is thread 0 and the others are the pool's
threads, which libgomp reuses for later regions (torch's included). ``fn`` is a Python callable
wrapped by ctypes; each thread takes the GIL to run it. Threads created later (a larger team)
inherit the creating thread's mode, as POSIX threads inherit the floating-point environment.

Where torch uses another OpenMP runtime (LLVM's libomp or Intel's libiomp on some builds, none on
some platforms), ``pool_runtime()`` is None and nothing is done beyond the calling thread;
``kernels.kernel_report()`` says which case holds.
"""
from __future__ import annotations

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
