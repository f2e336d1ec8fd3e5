"""Choices made by measurement on the machine that runs them, cached, with an override.

This module knows no kernel: it identifies the CPU, keeps each process's choices (``CHOSEN``), and
resolves one choice by the environment, the cache or a measurement it is handed
(``resolve_choice``). The choices themselves live beside their kernels: the tanh kernel
(``pyro_air.backend.tanh``), the dense-layer library and the evaluation chunk size
(``pyro_air.backend.onednn``), the bf16 verdict (``pyro_air.backend.precision``);
``pyro_air.backend.report`` gathers them.

Which of two mathematically equal kernels is faster depends on the CPU: tanh computed as 2
sigmoid(2x) - 1 was several times cheaper than ``torch.tanh`` on one CPU and several times dearer on
another (docs/performance.md, "Measurements behind the code", "Kernel choices"). So no table from
one CPU decides; the first use on a machine times both on the shapes that matter, interleaved
(``best_times``), and keeps the faster one unless it wins by less than ``MARGIN`` (then the exact
kernel).

Reproducibility: a choice is cached in ``$PYRO_AIR_CACHE/kernels.json`` (default
``~/.cache/pyro-air``) under a key of CPU model, torch version and thread count, so every later run
on the same machine uses the same kernel and gives the same numbers. Each choice has an overriding
environment variable (``forced_choice``).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

CACHE_ENV = "PYRO_AIR_CACHE"
MARGIN = 0.9  # a faster kernel must take < 90% of the exact one's time to be chosen

CHOSEN: dict = {}  # this process's choices: {name or (name, threads): {field: value, "source": ...}}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_label() -> str:
    """The CPU as a result records it: the model name and its vector extensions, e.g. "AMD EPYC (avx2)".
    The model name alone did not tell two machines apart: sessions 6-12 and 13 both read "AMD EPYC", one
    with AVX-512 and bf16, one with AVX2 only and about half the speed per core on the same runs."""
    flags = cpu_flags()
    return f"{cpu_model()} ({', '.join(flags)})" if flags else cpu_model()


def cpu_flags(wanted=("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")) -> list:
    """Which of the vector-extension flags that matter here the CPU reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def _cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pyro-air") / "kernels.json"


def _cache_key() -> str:
    return f"{cpu_model()}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def best_times(cases: dict, repeats: int) -> dict:
    """{name: seconds}: the best of ``repeats`` timings of each zero-argument callable in ``cases``,
    the cases interleaved round by round (every measured choice times its candidates this way)."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def forget_choices() -> None:
    """Forget every choice of this process (tanh and linear kernels, chunk size, bf16 verdict): the
    next use reads the environment, then the cache, then measures - what a new process does (tests)."""
    CHOSEN.clear()


def resolve_choice(name: str, field: str, env: str, allowed: tuple, what: str, measure, decide) -> dict:
    """One cached, measured choice (module docstring): ``$env`` if set (one of ``allowed``), else this
    machine's cache entry, else ``decide(measure())`` now, cached with the measured times. The
    answer: {field: value, "source": where it came from, "times": the measurement}. (``measure`` is
    a lambda so that tests can replace the measuring function of the kernel's module.)"""
    forced = forced_choice(env, allowed, what, field)
    if forced:
        return forced
    path, key = _cache_path(), _cache_key()
    entry = _read_cache(path).get(key, {})
    if entry.get(name) in allowed:
        return {field: entry[name], "source": f"cache {path}", "times": entry.get(f"{name}_times")}
    with _cache_lock(path):  # processes starting together measure once; the others read the answer
        entry = _read_cache(path).get(key, {})
        if entry.get(name) in allowed:
            return {field: entry[name], "source": f"cache {path}", "times": entry.get(f"{name}_times")}
        times = measure()
        value = decide(times)
        cache = _read_cache(path)  # re-read: another choice may have been cached meanwhile
        cache.setdefault(key, {}).update({name: value, f"{name}_times": times})
        _write_cache(path, cache)
    return {field: value, "source": "measured now", "times": times}


def forced_choice(env: str, allowed: tuple, what: str, field: str = "kernel") -> dict | None:
    """{field: value, "source": "$env"} when ``$env`` names one of ``allowed``, None when unset;
    any other value is an error that lists the allowed ones."""
    forced = os.environ.get(env)
    if not forced:
        return None
    if forced not in allowed:
        raise ValueError(f"{env}={forced!r} is not a {what}; use one of {', '.join(allowed)}")
    return {field: forced, "source": f"${env}"}


_lock_depth = 0


@contextlib.contextmanager
def _cache_lock(path: Path):
    """An exclusive lock beside the cache file (``flock``), so that two processes starting at once
    (``compare``'s workers, pytest-xdist's) cannot measure the same choice separately and, where it
    is close, choose differently; the second waits and then reads the first's choice. Best effort:
    where no lock can be taken the process measures on its own.

    Re-entrant within the process: a measurement may need another choice (the linear kernel's runs
    the tanh kernel), and a second ``flock`` on a new handle would wait forever for the one this
    process already holds."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    try:
        import fcntl
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(f".{path.name}.lock"), "a")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _lock_depth = 1
        yield
    finally:
        _lock_depth = 0
        handle.close()  # releases the lock


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict) -> None:
    """Best effort and atomic: an unwritable cache only means measuring again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        tmp.replace(path)
    except OSError:
        pass
