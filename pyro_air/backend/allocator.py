"""Keep freed tensor memory in the process instead of handing it back to the kernel (glibc only).

Why. PyTorch's CPU tensors come from ``malloc``. With glibc's defaults a freed block above the
(dynamic) mmap threshold is unmapped, and the top of the heap is trimmed as soon as more than the
trim threshold is free. A chunked evaluation or an IWAE training step allocates and frees the same
few MiB-sized tensors on every chunk or step, so each one arrives as fresh pages from the kernel and
its first write page-faults, 4 KiB at a time. glibc raises its thresholds by itself only after it
has freed a mapped block as large (up to 32 MiB), so speed depended on the process's history: in a
process that had freed no large block, evaluations and IWAE training steps page-faulted tens of
thousands of times and took longer; with the thresholds below they take at most one fault and the
time of a process whose history had already raised glibc's own thresholds
(``benchmarks/allocator.py`` measures both; the numbers: docs/performance.md, "Measurements behind
the code", "Freed memory kept for reuse").

What. ``keep_freed_memory()`` sets, once per process,

    M_MMAP_THRESHOLD = 32 MiB   (blocks below it come from the heap and are reused there)
    M_TRIM_THRESHOLD = 128 MiB  (up to this much free heap is kept rather than returned)

through ``mallopt``. Both are needed: either alone still faults (setting one switches off glibc's
own threshold adjustment). The cost is memory the process keeps: at most 128 MiB of freed heap
beyond what it uses. Tensors of 32 MiB and more are still mapped and unmapped as before.

It is process-wide and cannot be undone (glibc cannot be put back into its adaptive mode), so it
is applied where pyro-air does the work that profits - ``pyro_air.train.fit`` and the evaluation
functions (``pyro_air.evaluate.chunking.evaluation_mode``) - and by a user loop that calls it.
It changes no number, only where memory comes from (tests/test_allocator.py).

Override: ``PYRO_AIR_MALLOC=system`` keeps the C library's defaults; ``keep`` (the default) tunes.
Not glibc (macOS, Windows, musl): nothing is changed and ``allocator_report()`` says why.
"""
from __future__ import annotations

import ctypes
import os
import platform

MALLOC_ENV = "PYRO_AIR_MALLOC"
MALLOC_MODES = ("keep", "system")
M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20

_state: dict = {}


def malloc_mode() -> str:
    """``PYRO_AIR_MALLOC`` (default ``keep``); a clear error for anything else."""
    mode = os.environ.get(MALLOC_ENV, "keep").strip().lower() or "keep"
    if mode not in MALLOC_MODES:
        raise ValueError(f"{MALLOC_ENV}={os.environ[MALLOC_ENV]!r} is not one of {MALLOC_MODES}: use "
                         f"'keep' (pyro-air keeps freed memory for reuse, the default) or 'system' "
                         f"(the C library's own malloc thresholds)")
    return mode


def _glibc_mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> dict:
    """Set the two malloc thresholds of the module docstring once per process; returns the report.

    Safe to call often: after the first call it only returns what was done."""
    if _state:
        return dict(_state)
    mode = malloc_mode()
    mallopt = _glibc_mallopt()
    if mode == "system":
        _state.update(applied=False, reason=f"{MALLOC_ENV}=system: the C library's defaults")
    elif mallopt is None:
        _state.update(applied=False, reason=f"not glibc ({platform.system()} "
                                            f"{' '.join(filter(None, platform.libc_ver())) or 'unknown libc'}): nothing to tune")
    else:
        ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                   TRIM_THRESHOLD_BYTES))
        _state.update(applied=ok, reason=(f"glibc mallopt: mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, "
                                          f"trim threshold {TRIM_THRESHOLD_BYTES >> 20} MiB") if ok
                      else "glibc refused the thresholds (mallopt returned 0): its defaults stay")
    return dict(_state)


def allocator_report() -> dict:
    """What ``keep_freed_memory`` did in this process (``applied`` False and why, if not yet called)."""
    if _state:
        return dict(_state)
    return {"applied": False, "reason": "not applied yet in this process (fit and the evaluation functions apply it)"}
