"""The optimizer of the training loop: one Adam over the parameters of model and guide."""
from __future__ import annotations

import torch


def parameters_of(*modules) -> list:
    """The parameters of ``modules`` in order, each once (a module may share parameters)."""
    seen, params = set(), []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def make_adam(params, lr: float) -> torch.optim.Adam:
    """One ``torch.optim.Adam`` over ``params``, with torch's fused kernel where it applies (every
    parameter a floating-point tensor on the CPU or a CUDA device).

    Same algorithm (Kingma & Ba 2015) and state as the default Adam; the fused kernel updates each
    tensor in one pass instead of the ~10 elementwise passes of the default single-tensor path on
    the CPU, where the default step is a sizeable share of an ELBO training step (the numbers:
    docs/performance.md, "Measurements behind the code", "The training loop").
    The update differs from the default one only by float rounding (max 2.4e-7 after 50 steps in a
    side check). The optimizer state has the same layout either way, so a checkpoint written with
    one kernel loads into the other (tests/test_train.py); loading also restores the kernel choice
    saved with it, so a resumed run continues with the kernel it started with.
    """
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=True if fused else None)
