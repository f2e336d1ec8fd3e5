"""Training precision: float32 or bf16 autocast, and whether bf16 matrix products are native on this
CPU - a verdict measured once per machine and cached beside the kernel choices
(``pyro_air.backend.choices``; ``PYRO_AIR_BF16=native|emulated`` overrides)."""
from __future__ import annotations

import contextlib

import torch

from pyro_air.backend.choices import CHOSEN, best_times, cpu_model, resolve_choice

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

    Measured, not read off a flag table: AMX (Intel Sapphire Rapids and later) and AVX512-BF16 (e.g.
    AMD EPYC Zen 4) both give torch's oneDNN kernels native bf16 dot products (docs/performance.md,
    "Measurements behind the code", "bf16") - while other CPUs emulate. The first use times both
    (``measure_bf16_gemm``) and caches the verdict beside the tanh choice; override with
    ``PYRO_AIR_BF16=native|emulated``.
    """
    if "bf16" not in CHOSEN:
        CHOSEN["bf16"] = _resolve_bf16()
    return dict(CHOSEN["bf16"])


def _resolve_bf16() -> dict:
    return resolve_choice("bf16", "state", BF16_ENV, BF16_STATES, "bf16 verdict", lambda: measure_bf16_gemm(),
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
                      "see pyro_air.backend.precision.bf16_support): torch emulates bf16 here, so training is usually "
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
