"""Kernel choices made by measurement on the machine that runs them, cached, with an override.

Which of two mathematically equal kernels is faster depends on the CPU: tanh computed as
2 sigmoid(2x) - 1 was ~4x cheaper than ``torch.tanh`` forward on one AMD EPYC and 3.9x *dearer* on
an Intel Xeon with AVX-512/AMX (benchmarks/RESULTS.md). So no table from one CPU decides; the first
use on a machine times both on the shapes that matter (an evaluation chunk's activations forward,
a training step's forward + backward), interleaved, and keeps the faster one unless it wins by less
than ``MARGIN`` (then the exact kernel, ``torch.tanh``).

Reproducibility: the choice is cached in ``$PYRO_AIR_CACHE/kernels.json`` (default
``~/.cache/pyro-air``) under a key of CPU model, torch version and thread count, so every later run
on the same machine uses the same kernel and gives the same numbers; the two kernels differ by
<= 2e-7 per activation (tests/test_nets.py). Override: ``PYRO_AIR_TANH=torch`` or ``=sigmoid``
(or ``set_tanh_kernel``). ``kernel_report()`` says what was chosen and why; benchmark reports
print it.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

TANH_KERNELS = ("torch", "sigmoid")
TANH_ENV = "PYRO_AIR_TANH"
CACHE_ENV = "PYRO_AIR_CACHE"
MARGIN = 0.9  # the identity must take < 90% of torch.tanh's time to be chosen

_choice: dict = {}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def _tanh_identity(x: torch.Tensor) -> torch.Tensor:
    return x.mul(2).sigmoid_().mul_(2).sub_(1)


def measure_tanh(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of each kernel on an evaluation chunk's [1330, 500]
    activations forward plus a training step's [100, 500] forward and backward."""
    generator = torch.Generator().manual_seed(0)
    big = torch.randn(1330, 500, generator=generator)
    small = torch.randn(100, 500, generator=generator, requires_grad=True)
    kernels = {"torch": torch.tanh, "sigmoid": _tanh_identity}
    best = dict.fromkeys(kernels, float("inf"))
    for _ in range(repeats):
        for name, fn in kernels.items():
            t0 = time.perf_counter()
            fn(big)
            y = fn(small)
            torch.ops.aten.tanh_backward(torch.ones_like(y), y)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def choose_tanh(times: dict) -> str:
    """The kernel to use given measured times: the identity only if it clearly wins."""
    return "sigmoid" if times["sigmoid"] < MARGIN * times["torch"] else "torch"


def set_tanh_kernel(name: str | None) -> None:
    """Force a kernel for this process (``None``: back to the environment / cache / measurement)."""
    if name is not None and name not in TANH_KERNELS:
        raise ValueError(f"unknown tanh kernel {name!r}; use one of {', '.join(TANH_KERNELS)}")
    _choice.clear()
    if name is not None:
        _choice["tanh"] = {"kernel": name, "source": "set_tanh_kernel"}


def tanh_kernel() -> str:
    """"torch" or "sigmoid": the CPU tanh kernel of this process (module docstring)."""
    if "tanh" not in _choice:
        _choice["tanh"] = _resolve_tanh()
    return _choice["tanh"]["kernel"]


def _resolve_tanh() -> dict:
    forced = os.environ.get(TANH_ENV)
    if forced:
        if forced not in TANH_KERNELS:
            raise ValueError(f"{TANH_ENV}={forced!r} is not a tanh kernel; use one of {', '.join(TANH_KERNELS)}")
        return {"kernel": forced, "source": f"${TANH_ENV}"}
    path, key = _cache_path(), _cache_key()
    cache = _read_cache(path)
    if key in cache and cache[key].get("tanh") in TANH_KERNELS:
        return {"kernel": cache[key]["tanh"], "source": f"cache {path}", "times": cache[key].get("tanh_times")}
    times = measure_tanh()
    kernel = choose_tanh(times)
    cache[key] = {"tanh": kernel, "tanh_times": times}
    _write_cache(path, cache)
    return {"kernel": kernel, "source": "measured now", "times": times}


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


def kernel_report() -> dict:
    """CPU model and flags, torch version, threads, and each kernel chosen with its reason."""
    tanh_kernel()
    return {"cpu": cpu_model(), "flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "denormals_flushed": flush_denormals_supported(),
            "tanh": dict(_choice["tanh"])}


_flush_depth = 0


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True):
    """Inside: denormal floats are flushed to zero on the CPU (where supported), restored after.

    Why: normalized importance weights and their gradients underflow into the denormal range,
    and GEMMs on denormals are many times slower on x86 (an IWAE-8 step from initialization:
    49.8 ms -> 29.2 ms on one Xeon; benchmarks/RESULTS.md measures it here). Values below
    1.2e-38 become 0, which changes no log-likelihood, bound or gradient beyond float rounding
    (tests/test_kernels.py). Nested uses are counted, so an inner block does not end an outer one.
    """
    global _flush_depth
    if not enabled:
        yield
        return
    if _flush_depth == 0:
        torch.set_flush_denormal(True)
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0:
            torch.set_flush_denormal(False)


def flush_denormals_supported() -> bool:
    """Whether this CPU can flush denormal floats to zero (SSE3 and later x86; torch reports it)."""
    supported = torch.set_flush_denormal(True)
    if _flush_depth == 0:
        torch.set_flush_denormal(False)
    return bool(supported)
