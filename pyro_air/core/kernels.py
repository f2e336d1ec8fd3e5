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

The same machinery chooses the library for dense layers without gradients (evaluation): torch's
BLAS or oneDNN (``linear_kernel``, ``pyro_air.core.onednn``; ``PYRO_AIR_LINEAR=torch|onednn``);
training through oneDNN is opt-in (``PYRO_AIR_LINEAR_TRAINING=onednn``). How many elements an
evaluation scores per chunk follows from the linear choice (``chunk_elements``;
``PYRO_AIR_CHUNK_ELEMENTS`` overrides); it also moves numbers at float rounding only.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from pyro_air.core.allocator import allocator_report
from pyro_air.core.openmp import pool_runtime, set_flush_denormal_everywhere

TANH_KERNELS = ("torch", "sigmoid")
TANH_ENV = "PYRO_AIR_TANH"
CACHE_ENV = "PYRO_AIR_CACHE"
MARGIN = 0.9  # the identity must take < 90% of torch.tanh's time to be chosen (oneDNN likewise)
LINEAR_KERNELS = ("torch", "onednn")
LINEAR_ENV = "PYRO_AIR_LINEAR"
CHUNK_ENV = "PYRO_AIR_CHUNK_ELEMENTS"
CHUNK_ELEMENTS = (2 ** 20, 2 ** 21, 2 ** 22, 2 ** 23)  # 4 to 32 MiB per float32 [chunk, B, x_dim] tensor
ONEDNN_CHUNK_ELEMENTS = 2 ** 22  # chunk_elements: why
OFF_CPU_CHUNK_ELEMENTS = 2 ** 23  # unmeasured: a GPU has the memory, and fewer chunks mean fewer launches

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


def measure_tanh(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of each kernel on an evaluation chunk's [1330, 500]
    activations forward plus a training step's [100, 500] forward and backward."""
    generator = torch.Generator().manual_seed(0)
    big = torch.randn(1330, 500, generator=generator)
    small = torch.randn(100, 500, generator=generator, requires_grad=True)

    def timed(fn):
        def run():
            fn(big)
            y = fn(small)
            torch.ops.aten.tanh_backward(torch.ones_like(y), y)
        return run
    return best_times({"torch": timed(torch.tanh), "sigmoid": timed(_tanh_identity)}, repeats)


def choose_tanh(times: dict) -> str:
    """The kernel to use given measured times: the identity only if it clearly wins."""
    return "sigmoid" if times["sigmoid"] < MARGIN * times["torch"] else "torch"


def set_tanh_kernel(name: str | None) -> None:
    """Force a kernel for this process (``None``: back to the environment / cache / measurement)."""
    if name is not None and name not in TANH_KERNELS:
        raise ValueError(f"unknown tanh kernel {name!r}; use one of {', '.join(TANH_KERNELS)}")
    _choice.pop("tanh", None)
    if name is not None:
        _choice["tanh"] = {"kernel": name, "source": "set_tanh_kernel"}


def forget_choices() -> None:
    """Forget every choice of this process (tanh and linear kernels, chunk size, bf16 verdict): the
    next use reads the environment, then the cache, then measures - what a new process does (tests)."""
    _choice.clear()


def tanh_kernel() -> str:
    """"torch" or "sigmoid": the CPU tanh kernel of this process (module docstring)."""
    if "tanh" not in _choice:
        _choice["tanh"] = _resolve_tanh()
    return _choice["tanh"]["kernel"]


def _resolve_tanh() -> dict:
    return _resolve_choice("tanh", "kernel", TANH_ENV, TANH_KERNELS, "tanh kernel", lambda: measure_tanh(), choose_tanh)


def _resolve_choice(name: str, field: str, env: str, allowed: tuple, what: str, measure, decide) -> dict:
    """One cached, measured choice (module docstring): ``$env`` if set (one of ``allowed``), else this
    machine's cache entry, else ``decide(measure())`` now, cached with the measured times. The
    answer: {field: value, "source": where it came from, "times": the measurement}. (``measure`` is
    a lambda so that tests can replace the module's measuring function.)"""
    forced = _forced_choice(env, allowed, what, field)
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


def _forced_choice(env: str, allowed: tuple, what: str, field: str = "kernel") -> dict | None:
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


LINEAR_CHOICES = {False: "linear", True: "linear_training"}  # without / with gradients
LINEAR_TRAINING_ENV = "PYRO_AIR_LINEAR_TRAINING"


def set_linear_kernel(name: str | None) -> None:
    """Force the dense-layer library for this process, evaluation and training (``None``: back to
    the environment / cache / measurement / default)."""
    if name is not None and name not in LINEAR_KERNELS:
        raise ValueError(f"unknown linear kernel {name!r}; use one of {', '.join(LINEAR_KERNELS)}")
    for key in LINEAR_CHOICES.values():
        _choice.pop(key, None)
        if name is not None:
            _choice[key] = {"kernel": name, "source": "set_linear_kernel"}


def linear_kernel(training: bool = False) -> str:
    """"torch" or "onednn": the library of this process's dense layers on the CPU (``pyro_air.core.onednn``).

    Without gradients (evaluation) chosen by measurement: oneDNN only where this torch build has it
    and it took less than ``MARGIN`` of torch's time on an evaluation chunk (``measure_linear``;
    ``PYRO_AIR_LINEAR`` overrides). With gradients (``training``) torch's product unless
    ``PYRO_AIR_LINEAR_TRAINING=onednn`` opts in. Why training is opt-in: a training step through
    oneDNN took ~0.9x the time at 2 threads on one AMD EPYC but ~1.0x at 1 thread
    (``measure_linear_training``: 0.87-1.01 over repeated measurements on that shared host), too
    close for a one-time measurement to decide reliably, and another library changes every trained
    parameter at float rounding - so by default training keeps the bits of every committed result.
    """
    return linear_choice(training)["kernel"]


def linear_choice(training: bool = False) -> dict:
    """``linear_kernel``'s answer with its source (and measured times). A forced choice
    (``set_linear_kernel``, ``pinned_kernels``) holds for every thread count; otherwise the choice
    is per thread count, as the cache keys it, so that a process that changes its thread count
    uses what another process at that count reads from the cache."""
    key = LINEAR_CHOICES[bool(training)]
    if key in _choice:
        return _choice[key]
    per_threads = (key, torch.get_num_threads())
    if per_threads not in _choice:
        _choice[per_threads] = _resolve_linear_training() if training else _resolve_linear()
    return _choice[per_threads]


def _resolve_linear() -> dict:
    from pyro_air.core import onednn
    if not onednn.onednn_available():
        return {"kernel": "torch", "source": "oneDNN is not available in this torch build"}
    return _resolve_choice("linear", "kernel", LINEAR_ENV, LINEAR_KERNELS, "linear kernel",
                           lambda: onednn.measure_linear(), choose_linear)


def _resolve_linear_training() -> dict:
    from pyro_air.core import onednn
    forced = _forced_choice(LINEAR_TRAINING_ENV, LINEAR_KERNELS, "linear kernel")
    if forced:
        if forced["kernel"] == "onednn" and not onednn.onednn_available():
            raise ValueError(f"{LINEAR_TRAINING_ENV}=onednn, but this torch build has no oneDNN; unset it")
        return forced
    return {"kernel": "torch", "source": f"default (opt in with {LINEAR_TRAINING_ENV}=onednn)"}


def choose_linear(times: dict) -> str:
    """oneDNN only if it clearly wins (``MARGIN``), else torch's own product."""
    return "onednn" if times["onednn"] < MARGIN * times["torch"] else "torch"


def chunk_elements(device=None) -> int:
    """Elements per [chunk, B, x_dim] tensor that an evaluation scores at once (``pyro_air.evaluate
    .chunking.units_per_chunk``; the draws are made in fixed units, so this moves numbers at float
    rounding only). Off the CPU ``OFF_CPU_CHUNK_ELEMENTS``; on the CPU ``PYRO_AIR_CHUNK_ELEMENTS``
    if set, else a rule on the measured linear choice:

        oneDNN products -> 2**22 (16 MiB tensors),   torch's product (MKL) -> 2**20 (4 MiB).

    Why a rule and not a measurement of its own: the effect is 3-15%, which a one-time probe of a
    few seconds could not tell from noise (it flipped between candidates on one machine), while
    the mechanism follows the library: oneDNN's products gain from more rows (the reference
    decoder at 2 threads, 2-core AMD EPYC: 145 GFLOP/s at 1330 rows, 156 at 4096) and MKL's do not
    (118 at 1024, 97 at 1330, 107 at 4096). IWAE-5000 of the reference VAE, 10 images a batch,
    time relative to 2**20 (median of 7 interleaved rounds, same machine): oneDNN 2**21 / 2**22 /
    2**23 -> 1.00 / 0.97 / 0.93 at 2 threads, 0.97 / 0.94 / 0.94 at 1; MKL -> 1.08 / 1.12 / 1.15
    and 1.02 / 1.10 / 1.17."""
    if device is not None and torch.device(device).type != "cpu":
        return OFF_CPU_CHUNK_ELEMENTS
    return chunk_choice()["elements"]


def chunk_choice() -> dict:
    """``chunk_elements``'s CPU answer with its source."""
    if "chunk_elements" in _choice:  # pinned
        return _choice["chunk_elements"]
    forced = _forced_choice(CHUNK_ENV, tuple(str(n) for n in CHUNK_ELEMENTS), "chunk size in elements",
                            "elements")
    if forced:
        return {**forced, "elements": int(forced["elements"])}
    library = linear_kernel()
    return {"elements": ONEDNN_CHUNK_ELEMENTS if library == "onednn" else CHUNK_ELEMENTS[0],
            "source": f"rule: the evaluation's dense layers run through {library}"}


def chosen_kernels() -> dict:
    """{"tanh": ..., "linear": ..., "linear_training": ..., "chunk_elements": ...}: the choices that
    change numbers at float rounding (recorded beside a number that must repeat exactly, e.g. a zoo
    entry's check)."""
    return {"tanh": tanh_kernel(), "linear": linear_kernel(), "linear_training": linear_kernel(training=True),
            "chunk_elements": chunk_elements()}


@contextlib.contextmanager
def pinned_kernels(choices: dict):
    """Inside: the kernels of ``choices`` (keys as ``chosen_kernels`` returns; a missing key keeps
    this process's choice), the previous choices restored after."""
    allowed = {"tanh": TANH_KERNELS, "linear": LINEAR_KERNELS, "linear_training": LINEAR_KERNELS,
               "chunk_elements": CHUNK_ELEMENTS}
    unknown = sorted(set(choices) - set(allowed))
    if unknown:
        raise ValueError(f"unknown kernel choice(s) {', '.join(unknown)}; use {', '.join(allowed)}")
    bad = [f"{name}={kernel!r}" for name, kernel in choices.items() if kernel not in allowed[name]]
    if bad:
        raise ValueError(f"unknown kernel(s) {', '.join(bad)}")
    saved = {name: _choice.get(name) for name in choices}
    try:
        for name, kernel in choices.items():
            field = "elements" if name == "chunk_elements" else "kernel"
            _choice[name] = {field: kernel, "source": "pinned_kernels"}
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                _choice.pop(name, None)
            else:
                _choice[name] = before


def kernel_report() -> dict:
    """CPU model and flags, torch version, threads, and each kernel chosen with its reason."""
    chosen_kernels()
    return {"cpu": cpu_model(), "flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "denormals_flushed": flush_denormals_supported(),
            "denormal_flush_reach": denormal_flush_reach(),
            "tanh": dict(_choice["tanh"]), "linear": dict(linear_choice()),
            "linear_training": dict(linear_choice(training=True)), "chunk_elements": dict(chunk_choice()),
            "bf16": bf16_support(),
            "allocator": allocator_report()}


_flush_depth = 0


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True):
    """Inside: denormal floats are flushed to zero on the CPU (where supported), restored after.

    Why: normalized importance weights and their gradients underflow into the denormal range,
    and GEMMs on denormals are many times slower on x86 (an IWAE-8 step from initialization:
    49.8 ms -> 29.2 ms on one Xeon; benchmarks/RESULTS.md measures it here). Values below
    1.2e-38 become 0, which changes no log-likelihood, bound or gradient beyond float rounding
    (tests/test_kernels.py). Nested uses are counted, so an inner block does not end an outer one.

    The mode is set on every thread of torch's OpenMP pool, not only the calling one
    (``pyro_air.core.openmp``): torch's own switch reaches the calling thread alone, which at 2
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
    "calling thread only" (another runtime; module docstring of ``pyro_air.core.openmp``)."""
    return "every pool thread" if pool_runtime() is not None else "calling thread only"


# -- precision ------------------------------------------------------------------------------------
PRECISIONS = ("float32", "bf16")


BF16_ENV = "PYRO_AIR_BF16"
BF16_STATES = ("native", "emulated")
BF16_MIN_SPEEDUP = 1.2  # bf16 GEMMs must be at least this much faster than float32 to count as native


def measure_bf16_gemm(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of the AIR decoder's widest training GEMM,
    [100, 500] x [500, 784] with bias, in float32 and in bf16."""
    generator = torch.Generator().manual_seed(0)
    cases = {}
    for name, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16)):
        h = torch.randn(100, 500, generator=generator).to(dtype)
        w = torch.randn(784, 500, generator=generator).to(dtype)
        b = torch.randn(784, generator=generator).to(dtype)
        cases[name] = (h, w, b)

    def four_products(h, w, b):
        def run():
            for _ in range(4):
                torch.nn.functional.linear(h, w, b)
        return run
    best = best_times({name: four_products(*tensors) for name, tensors in cases.items()}, repeats)
    return {name: seconds / 4 for name, seconds in best.items()}


def bf16_support() -> dict:
    """Whether bf16 matrix products are native on this CPU ("native": measurably faster than
    float32) or emulated ("emulated": torch converts and computes in float32, usually slower).

    Measured, not read off a flag table: AMX (Intel Sapphire Rapids and later) and AVX512-BF16
    (e.g. AMD EPYC Zen 4) both give torch's oneDNN kernels native bf16 dot products - on one 2-core
    AMD EPYC with avx512_bf16 and no AMX a [100, 500] x [500, 784] GEMM ran ~2.2x faster in bf16
    (benchmarks/RESULTS.md) - while other CPUs emulate. The first use times both (``measure_bf16_gemm``)
    and caches the verdict beside the tanh choice; override with ``PYRO_AIR_BF16=native|emulated``.
    """
    if "bf16" not in _choice:
        _choice["bf16"] = _resolve_bf16()
    return dict(_choice["bf16"])


def _resolve_bf16() -> dict:
    return _resolve_choice("bf16", "state", BF16_ENV, BF16_STATES, "bf16 verdict", lambda: measure_bf16_gemm(),
                           decide_bf16)


def decide_bf16(times: dict) -> str:
    """"native" if bf16 GEMMs took less than 1 / BF16_MIN_SPEEDUP of float32's time, else "emulated"."""
    return "native" if times["float32"] >= BF16_MIN_SPEEDUP * times["bf16"] else "emulated"


def check_precision(precision: str, device) -> None:
    """Raise for an unknown precision; warn when bf16 will not be faster on ``device``.

    Decision (issue 17): bf16 where it is emulated (a CPU without native bf16 GEMMs, see
    ``bf16_support``, or a CUDA GPU before Ampere) is allowed with a warning rather than refused: it
    computes the same algorithm at lower precision, only slower - useful to check a bf16 run on a
    laptop before sending it to a machine where bf16 is fast.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return
    device = torch.device(device)
    if device.type == "cpu" and bf16_support()["state"] != "native":
        import warnings
        warnings.warn(f"precision='bf16' on a CPU without native bf16 matrix products ({cpu_model()}; measured, "
                      "see pyro_air.core.kernels.bf16_support): torch emulates bf16 here, so training is usually "
                      "slower than in float32 and less precise; use precision='float32' (--precision float32) "
                      "unless you are checking a bf16 run", RuntimeWarning, stacklevel=3)
    elif device.type == "cuda" and not torch.cuda.is_bf16_supported():
        import warnings
        warnings.warn("precision='bf16' on a GPU without native bf16 (before Ampere): use precision='float32'",
                      RuntimeWarning, stacklevel=3)


def autocast(precision: str, device):
    """The training step's mixed-precision context: bf16 autocast for ``precision="bf16"`` (matrix
    products in bf16, reductions and losses in float32 per torch's autocast lists), else nothing."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
