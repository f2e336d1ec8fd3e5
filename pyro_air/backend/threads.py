"""How many threads torch's CPU kernels run on: a deterministic default, checks, a scoped setting.

The default (``default_threads``) is fixed per machine, never taken from the current load, so a
command gives the same numbers every time it runs; ``--threads`` / ``TrainConfig.threads`` override
it (``resolve_threads`` checks them). Why it matters on a shared machine: ``benchmarks/busy.py``.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


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
    same numbers every time it runs (docs/runs.md, "What is and is not reproducible"). On a machine shared
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


def busy_load(threads: int) -> float | None:
    """The 1-minute load average if it says the CPUs are oversubscribed with ``threads`` more threads
    (load + threads > available CPUs + 0.5: other processes keep cores busy), else None."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return load if load + threads > available_cpus() + 0.5 else None


def sleep_waiting_threads_if_busy(threads: int) -> bool:
    """On a busy machine, before torch is imported: OpenMP's waiting threads sleep
    (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning on the cores the working threads need. The
    same numbers (who waits how, not who computes what); beside a busy process an epoch takes about
    half the time (docs/performance.md, "Threads and a busy machine"; ``benchmarks/busy.py``), while
    on an idle machine spinning is faster, so it is not set there. Not when the policy is already
    set or torch already loaded (OpenMP reads it once). True if it was set."""
    if threads <= 1 or WAIT_POLICY_ENV in os.environ or "torch" in sys.modules or busy_load(threads) is None:
        return False
    os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return True


def thread_report(threads: int, given: int | None) -> str:
    """One line: the thread count a command runs with, where it came from, and on a busy machine what
    was done about it and what would help more."""
    if given is not None:
        source = "--threads"
    elif os.environ.get(THREADS_ENV, "").strip():
        source = f"${THREADS_ENV}"
    else:
        source = f"the default: min(physical cores {physical_cores()}, available CPUs {available_cpus()})"
    line = f"pyro-air: {threads} thread{'s' if threads != 1 else ''} ({source})"
    load = busy_load(threads)
    if load is None:
        return line
    line += f"; 1-minute load {load:.1f} on {available_cpus()} CPUs: busy"
    if os.environ.get(WAIT_POLICY_ENV, "").upper() == "PASSIVE":
        line += f", so waiting threads sleep (${WAIT_POLICY_ENV}=PASSIVE, same numbers)"
    if threads > 1:
        line += "; --threads 1 is faster on a busy machine (other float rounding)"
    return line


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
