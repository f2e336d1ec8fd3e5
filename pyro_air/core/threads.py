"""How many threads torch's CPU kernels run on: a deterministic default, checks, a scoped setting.

The default (``default_threads``) is fixed per machine, never taken from the current load, so a
command gives the same numbers every time it runs; ``--threads`` / ``TrainConfig.threads`` override
it (``resolve_threads`` checks them). Why it matters on a shared machine: ``benchmarks/busy.py``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

THREADS_ENV = "OMP_NUM_THREADS"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: ``taskset``, container limits), >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores (``/proc/cpuinfo``: distinct (physical id, core id) pairs), else the CPU count."""
    try:
        cores, phys = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                cores.add((phys, line.split(":", 1)[1].strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count the ``pyro-air`` commands use unless ``--threads`` says otherwise:
    ``$OMP_NUM_THREADS`` if set, else min(physical cores, CPUs available to this process).

    Deterministic on a given machine (never chosen from the current load), so a command gives the
    same numbers every time it runs (README, "What is and is not reproducible"). On a machine shared
    with other busy processes, fewer threads than cores degrade far more gracefully: with one
    competing busy process on a 2-core machine an epoch at 2 threads took many times longer than at
    1 thread (``benchmarks/busy.py``) - pass ``--threads 1`` there.
    """
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        try:
            return max(1, int(forced.split(",")[0]))
        except ValueError:
            pass  # torch ignores a malformed value too
    return max(1, min(physical_cores(), available_cpus()))


def resolve_threads(threads: int | None) -> int:
    """``threads`` checked (an integer >= 1; above the available CPUs only with a warning), or
    ``default_threads()`` for None."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1 (CPU threads for torch's kernels), got {threads!r}; "
                         f"omit it (--threads) for the default, {default_threads()} on this machine")
    if threads > available_cpus():
        import warnings
        warnings.warn(f"threads={threads} is more than the {available_cpus()} CPUs available to this process: "
                      "threads will wait for each other (oversubscription); use at most that many",
                      RuntimeWarning, stacklevel=3)
    return threads


@contextlib.contextmanager
def num_threads(threads: int | None):
    """Inside: torch runs its CPU kernels on ``threads`` threads (None: leave the current setting);
    the previous count is restored after."""
    import torch  # here, not at the top: the command line parses without torch (pyro_air.cli.names)

    if threads is None:
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
