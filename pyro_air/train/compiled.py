"""A compiled training step: ``TrainConfig(compile=True)`` / ``pyro-air train --compile``.

What is compiled: the step's loss, ``objective.differentiable_loss(model, guide, x_B, num_data=N)``,
by ``torch.compile``; its backward pass is compiled with it (AOTAutograd), while the optimizer step
(torch's fused Adam: a few kernels for all parameters), the schedule and the checks stay eager.
Every step has the same shapes (the loop drops the ragged last batch), so one graph serves the run.

- On CUDA the mode is ``"reduce-overhead"``: the compiled forward and backward are replayed as CUDA
  graphs, so a step costs a few graph launches instead of hundreds of kernel launches from Python
  (the AIR MNIST step is small enough for launch overhead to dominate on a large GPU; the goal and
  where it is measured: docs/performance.md, "Measurements behind the code", "The training loop").
- On the CPU the mode is the default (inductor's C++ kernels fuse the elementwise work).

Numbers: the compiled step computes the same loss with other float rounding, and compiled kernels
draw their Gaussian noise with their own generator (seeded from torch's, so a compiled run repeats
itself exactly); with ``torch._inductor.config.fallback_random = True`` they use torch's eager draws,
and ``tests/test_compiled.py`` checks a compiled run against the eager one to float rounding on the CPU.
A resumed run may switch compilation on or off (``RESUME_CHANGES_RESULT``). The first step pays the
compilation (seconds to a minute); use it for long runs. Data-parallel runs (``distributed=True``)
are not compiled.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from pyro_air.backend.tanh import tanh_kernel
from pyro_air.backend.onednn import exclude_from_compilation


def compile_mode(device: torch.device) -> str:
    """``"reduce-overhead"`` (CUDA graphs) on CUDA, inductor's default elsewhere."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


def compiled_loss(loss_fn, device):
    """``loss_fn`` (x_B -> scalar loss) compiled for ``device``; its result is cloned, because a CUDA
    graph's outputs are overwritten by its next replay and the loop keeps losses for later checks."""
    tanh_kernel()  # settle the kernel choice (a cache file read, or a measurement) outside the traced code
    exclude_from_compilation()  # the oneDNN kernels: never traced (pyro_air.backend.onednn.eager_only)
    compiled = torch.compile(loss_fn, mode=compile_mode(device), dynamic=False)

    def step_loss(xb: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            # Dynamo traces through the functools.cache'd class checks of the direct path
            # (pyro_air.core.scoring.consistent_override / keeps) and warns that it ignores the cache:
            # they are pure functions of classes, so tracing them gives what the cache would.
            warnings.filterwarnings("ignore", message=".*functools.lru_cache.*", category=UserWarning)
            return compiled(xb).clone()

    return step_loss


@contextlib.contextmanager
def compiled_forward(module: torch.nn.Module, enabled: bool = True):
    """Inside the block, ``module``'s forward pass runs through ``torch.compile`` (inductor, static shapes);
    outside it, the module is as it was. Its parameters and state dict are untouched, so a fingerprint of
    the weights (``pyro_air.evaluate.resume``) and a checkpoint are the same either way.

    For an evaluation with a convolutional network whose small convolutions sit among elementwise work
    that inductor fuses: with the gated PixelCNN decoder inside it, an IWAE estimate took 0.69-0.72x the
    eager time at one thread (docs/performance.md; ``benchmarks/pixelcnn_compiled.py``). For the MLP models it
    is slower (``benchmarks/COMPILED.md``), so nothing compiles by default. Each new input shape compiles
    once (seconds to a minute); the numbers differ from eager ones at float rounding."""
    if not enabled:
        yield module
        return
    import torch._inductor.config as inductor_config

    exclude_from_compilation()
    if "forward" in vars(module):
        raise ValueError(f"{type(module).__name__}.forward is replaced already (compiled_forward blocks do not nest)")
    with inductor_config.patch(compile_threads=1):  # compiling takes the thread the caller runs on, no more
        module.forward = torch.compile(module.forward, dynamic=False)
        try:
            yield module
        finally:
            del module.forward
