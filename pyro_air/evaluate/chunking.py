"""Chunked evaluation helpers: memory stays flat in the number of samples (docs/design.md, contract 3)."""
from __future__ import annotations

import contextlib
import math

import pyro
import torch

from pyro_air.backend.allocator import keep_freed_memory
from pyro_air.backend.onednn import chunk_elements
from pyro_air.backend.openmp import denormals_flushed
from pyro_air.backend.onednn import reusing_packed_weights

# Elements of the largest per-draw tensor ([samples, batch, x_dim]); 2**20 float32 = 4 MiB. It fixes
# how the samples are drawn (``default_chunk_size``), so it stays as it was when the evaluation
# numbers in this repository were made. It was first chosen as the computed chunk too (a sweep with
# torch's MKL products, where it reached the largest share of the GEMM bound; docs/performance.md,
# "Measurements behind the code", "Evaluation chunk size"); with oneDNN's products larger chunks
# win, so the scored chunk is now chosen on its own (``units_per_chunk``;
# ``pyro_air.backend.onednn.chunk_elements``).
DEFAULT_CHUNK_ELEMENTS = 2 ** 20


def module_device(module, default: torch.device | None = None) -> torch.device:
    """The device of ``module``'s first parameter; ``default`` (else CPU) for a module without
    parameters or a plain Pyro function (whose ``pyro.param``s live in the param store)."""
    default = torch.device("cpu") if default is None else default
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return default
    for p in parameters():
        return p.device
    return default


@contextlib.contextmanager
def evaluation_mode(*modules):
    """eval() mode (a denoising guide adds no noise), no gradients, Pyro validation off, denormals
    flushed to zero (``pyro_air.backend.openmp.denormals_flushed``), oneDNN's packed weights reused
    (``pyro_air.backend.onednn.reusing_packed_weights``); all restored after. Plain Pyro
    functions (not ``torch.nn.Module``s) have no mode and are left as they are. Freed tensor memory
    is kept for reuse from here on (``pyro_air.backend.allocator``: process-wide, not restored)."""
    keep_freed_memory()
    modules = [m for m in modules if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad(), pyro.validation_enabled(False), denormals_flushed(), reusing_packed_weights():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def default_chunk_size(num_samples: int, batch_size: int, x_dim: int) -> int:
    """Samples per datapoint drawn at once: at most ``DEFAULT_CHUNK_ELEMENTS`` per [k, B, x_dim]
    tensor. Fixed, because it is the layout of the random stream (each draw of k samples consumes
    the stream in its own way), so an evaluation's samples depend on it and on nothing else; how
    many of these units are *computed* at once is ``units_per_chunk``."""
    return max(1, min(num_samples, DEFAULT_CHUNK_ELEMENTS // max(1, batch_size * x_dim)))


def units_per_chunk(unit: int, num_samples: int, batch_size: int, x_dim: int, device=None) -> int:
    """How many draw units of ``unit`` samples an evaluation scores at once: as many as fit in
    ``pyro_air.backend.onednn.chunk_elements(device)`` elements per [chunk, B, x_dim] tensor (on the
    CPU: 16 MiB where the dense layers run through oneDNN, else 4 MiB), at least one. Nothing is
    asked when a single unit already holds every sample."""
    if unit >= num_samples:
        return 1
    return max(1, chunk_elements(device) // max(1, unit * batch_size * x_dim))


def as_data(x) -> tuple:
    """The evaluators' data as a tuple of the model's positional arguments: a Tensor [N, ...], or a
    tuple / list of tensors that share their first dim N (the datapoint)."""
    data = (x,) if isinstance(x, torch.Tensor) else tuple(x) if isinstance(x, (tuple, list)) else None
    if not data or not all(isinstance(a, torch.Tensor) and a.dim() >= 1 for a in data):
        raise ValueError(f"x must be a tensor [N, ...] or a tuple of tensors sharing their first dim N, "
                         f"got {type(x).__name__}")
    sizes = {len(a) for a in data}
    if len(sizes) != 1:
        raise ValueError(f"the tensors of x must share their first dim (the datapoint), got sizes {sorted(sizes)}")
    if not sizes.pop():
        raise ValueError("x is empty; pass at least one datapoint")
    return data


def row_size(data: tuple) -> int:
    """Elements per datapoint over all of ``data`` (what a chunk's memory grows with)."""
    return max(1, sum(a[0].numel() for a in data))


def slice_data(data: tuple, start: int, stop: int, device) -> tuple:
    return tuple(a[start:stop].to(device, non_blocking=True) for a in data)


def batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def streaming_logmeanexp(chunks) -> torch.Tensor:
    """log (1/S) sum_s exp(a_s) over the rows of [S_i, B] chunks, without holding all S rows."""
    total, count = None, 0
    for chunk in chunks:
        lse = torch.logsumexp(chunk, dim=0)
        total = lse if total is None else torch.logaddexp(total, lse)
        count += chunk.shape[0]
    return total - math.log(count)
