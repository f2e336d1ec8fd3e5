"""What this process chose and why: the kernel choices that change numbers at float rounding
(``chosen_kernels``, recorded beside a number that must repeat exactly, e.g. a zoo entry's check),
a block that pins them (``pinned_kernels``), and the full report benchmark reports print
(``kernel_report``: CPU, flags, threads, each choice with its source, denormals, bf16, allocator)."""
from __future__ import annotations

import contextlib

import torch

from pyro_air.backend.allocator import allocator_report
from pyro_air.backend.choices import CHOSEN, cpu_flags, cpu_model
from pyro_air.backend.onednn import (CHUNK_ELEMENTS, LINEAR_KERNELS, chunk_choice, chunk_elements, linear_choice,
                                     linear_kernel)
from pyro_air.backend.openmp import denormal_flush_reach, flush_denormals_supported
from pyro_air.backend.precision import bf16_support
from pyro_air.backend.tanh import TANH_KERNELS, tanh_choice, tanh_kernel


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
    saved = {name: CHOSEN.get(name) for name in choices}
    try:
        for name, kernel in choices.items():
            field = "elements" if name == "chunk_elements" else "kernel"
            CHOSEN[name] = {field: kernel, "source": "pinned_kernels"}
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                CHOSEN.pop(name, None)
            else:
                CHOSEN[name] = before


def kernel_report() -> dict:
    """CPU model and flags, torch version, threads, and each kernel chosen with its reason."""
    chosen_kernels()
    return {"cpu": cpu_model(), "flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "denormals_flushed": flush_denormals_supported(),
            "denormal_flush_reach": denormal_flush_reach(),
            "tanh": dict(tanh_choice()), "linear": dict(linear_choice()),
            "linear_training": dict(linear_choice(training=True)), "chunk_elements": dict(chunk_choice()),
            "bf16": bf16_support(),
            "allocator": allocator_report()}
