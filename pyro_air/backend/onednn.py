"""Dense layers on the CPU through oneDNN, where a measurement finds it faster.

torch's CPU ``addmm`` (what ``nn.Linear`` runs in float32) calls the BLAS torch was built with,
Intel MKL in the PyPI wheels, and MKL picks its code path by CPU vendor, so on some CPUs the float32
products of an evaluation run faster through oneDNN, the other matrix library inside torch. oneDNN
also applies tanh inside the product (an element-wise "post-op" on each output block while it is in
cache), so a dense layer and the tanh after it become one call with no element-wise pass left
(against the product plus the two in-place passes of ``pyro_air.backend.tanh.linear_tanh_no_grad``).
How much either gains depends on the CPU: the measurements are in docs/performance.md, "Measurements
behind the code", "oneDNN dense layers". oneDNN's tanh is within ~1 ulp (7e-8) of float64 tanh,
closer than either tanh kernel of ``pyro_air.backend.tanh.Tanh``.

Where it is used: every float32 ``nn.Linear`` inside a ``pyro_air.backend.nets.MLP`` on the CPU
(outside autocast and ``torch.compile``), with a following tanh fused, wherever the library choice
says oneDNN (``linear_kernel`` below). Without gradients (evaluation, validation) through
``onednn_linear``, with packed weights reused for a whole evaluation (``reusing_packed_weights``);
the choice is measured once per machine and cached beside the tanh choice
(``PYRO_AIR_LINEAR=torch|onednn`` overrides). With gradients (training) through ``LinearFunction`` -
oneDNN for the forward product and the input gradient, torch's own product for the weight gradient
(oneDNN was not faster there) - only when asked for (``PYRO_AIR_LINEAR_TRAINING=onednn``), since the
step-time gain was too small and too variable for a one-time measurement to decide
(``linear_kernel``). The two libraries sum each product in another order, so numbers differ between
the choices at float rounding (~1e-6 relative per layer), as they differ between CPUs;
``PYRO_AIR_LINEAR=torch`` reproduces evaluations made before this choice existed.

``torch.ops.mkldnn._linear_pointwise`` (y = act(x W^T + b) for a float32 [rows, in] x and
[out, in] W, the kernel torch's own compiler emits for dense layers on the CPU) is the entry point;
a torch build without oneDNN simply keeps MKL.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import weakref

import torch

from pyro_air.backend.choices import CHOSEN, MARGIN, best_times, forced_choice, resolve_choice
from pyro_air.backend.tanh import Tanh, linear_tanh_no_grad

ACTIVATIONS = ("none", "tanh")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def onednn_available() -> bool:
    """Whether this torch build can run oneDNN's dense layer (checked once per process by a tiny call)."""
    global _available
    if _available is None:
        try:
            op = torch.ops.mkldnn._linear_pointwise
            y = op(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4), "none", [], "")
            _available = torch.backends.mkldnn.is_available() and torch.equal(y, torch.full((2, 4), 3.0))
        except (AttributeError, RuntimeError):
            _available = False
    return _available


_available: bool | None = None


_EAGER_ONLY: list = []  # the wrappers eager_only made


def eager_only(fn):
    """``fn`` kept out of torch.compile's tracing (``torch.compiler.disable``) without importing
    ``torch._dynamo`` (seconds) until compilation is in use: ``exclude_from_compilation`` makes the
    disabled functions (``pyro_air.train.compiled`` calls it before compiling), and a call made
    after anything else loaded torch._dynamo makes its own. Until then ``fn`` runs as it is (nothing
    can trace it), the same numbers."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        impl = call.disabled
        if impl is None:
            if "torch._dynamo" not in sys.modules:
                return fn(*args, **kwargs)
            impl = call.disabled = torch.compiler.disable(fn)
        return impl(*args, **kwargs)

    call.disabled = None
    _EAGER_ONLY.append(call)
    return call


def exclude_from_compilation() -> None:
    """Make every ``eager_only`` function's ``torch.compiler.disable`` form now, outside any traced code."""
    for call in _EAGER_ONLY:
        if call.disabled is None:
            call.disabled = torch.compiler.disable(call.__wrapped__)


# Eager kernels: torch.compile must never trace them. Where a compiled caller breaks its graph and
# runs a frame eagerly, torch.compile still tries nested calls as frames of their own, and its
# inductor cannot lower this op on weights that are not frozen constants (it fails to compile).
@eager_only
def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  activation: str = "none") -> torch.Tensor:
    """act(x W^T + b) through oneDNN, no autograd: x [..., in] (leading dimensions folded into rows,
    as ``nn.Linear`` does), W [out, in], b [out] or None; ``activation`` "none" or "tanh"."""
    _check_activation(activation)
    rows = x.reshape(-1, x.shape[-1])
    y = torch.ops.mkldnn._linear_pointwise(rows, packed_weight(weight, rows.shape[0]), bias, activation, [], "")
    return y.view(*x.shape[:-1], weight.shape[0])


# Packed weights, reused inside ``reusing_packed_weights()`` only:
# (id(weight), rows) -> (weakref, version, address, packed).
_packed: dict = {}
_reuse_depth = 0


@contextlib.contextmanager
def reusing_packed_weights():
    """Inside: each weight is packed into oneDNN's layout once per row count and reused; the packs
    are dropped when the outermost block ends (``pyro_air.evaluate.chunking.evaluation_mode`` enters it).

    Unpacked, every call reorders W before multiplying, and an evaluation multiplies the same
    decoder weights thousands of times (the reorder is a noticeable share of each product:
    docs/performance.md, "Measurements behind the code"). Why only inside a block: the weights must
    not change while a pack is in use, and that cannot be read off a tensor - torch's fused Adam
    updates parameters in place without incrementing their version counters (tests/test_onednn.py) -
    but an evaluation holds them fixed. Within the block a pack is still used only for the same
    tensor object (weak reference), version and storage address, and results never depend on which
    products came before (packs are per row count, since oneDNN may pick another kernel for another
    shape)."""
    global _reuse_depth
    _reuse_depth += 1
    try:
        yield
    finally:
        _reuse_depth -= 1
        if _reuse_depth == 0:
            _packed.clear()


def packed_weight(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """W in oneDNN's blocked layout for products with ``rows`` rows: inside
    ``reusing_packed_weights()`` made once and reused, elsewhere W itself (oneDNN reorders it per call)."""
    if _reuse_depth == 0 or not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return weight
    key = (id(weight), rows)
    entry = _packed.get(key)
    if entry is not None and entry[0]() is weight and entry[1:3] == (weight._version, weight.data_ptr()):
        return entry[3]
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    _packed[key] = (weakref.ref(weight, lambda ref, key=key: _forget(key, ref)), weight._version,
                    weight.data_ptr(), packed)
    return packed


def held_packs() -> list:
    """The (id(weight), rows) keys of the packs held now (empty outside ``reusing_packed_weights``)."""
    return list(_packed)


def _forget(key, dead_ref) -> None:
    """A packed weight goes with its weight (not with a later tensor that happens to get its id)."""
    entry = _packed.get(key)
    if entry is not None and entry[0] is dead_ref:
        del _packed[key]


def _decoder_layers(generator):
    """The AIR decoder's two widest layers (500 -> 500, 500 -> 784) with gradients on their weights."""
    w_hidden = (torch.randn(500, 500, generator=generator) * 0.05).requires_grad_()
    b_hidden = torch.randn(500, generator=generator).requires_grad_()
    w_out = (torch.randn(784, 500, generator=generator) * 0.05).requires_grad_()
    b_out = torch.randn(784, generator=generator).requires_grad_()
    return w_hidden, b_hidden, w_out, b_out


def measure_linear(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of an evaluation chunk's [1330, 500] activations
    through the decoder's two widest layers without gradients, each way (``torch``: ``nn.Linear``'s
    product and pyro-air's tanh, as ``MLP`` runs them otherwise; ``onednn``: ``onednn_linear`` with
    packed weights, as in an evaluation)."""
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(1330, 500, generator=generator)
    w_hidden, b_hidden, w_out, b_out = _decoder_layers(generator)

    def torch_layers():
        torch.nn.functional.linear(linear_tanh_no_grad(h, w_hidden, b_hidden), w_out, b_out)

    def onednn_layers():
        onednn_linear(onednn_linear(h, w_hidden, b_hidden, "tanh"), w_out, b_out)

    with torch.no_grad(), reusing_packed_weights():  # as an evaluation runs them
        return best_times({"torch": torch_layers, "onednn": onednn_layers}, repeats)


def measure_linear_training(repeats: int = 15) -> dict:
    """Seconds (best of ``repeats``, interleaved) of a training step's [100, 500] activations
    through the same two layers, forward and backward, each way (``torch``: ``nn.Linear`` and
    pyro-air's ``Tanh`` under autograd; ``onednn``: ``onednn_linear_with_grad``)."""
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(100, 500, generator=generator, requires_grad=True)
    w_hidden, b_hidden, w_out, b_out = _decoder_layers(generator)
    tanh = Tanh()

    def torch_layers():
        hidden = tanh(torch.nn.functional.linear(h, w_hidden, b_hidden))
        torch.nn.functional.linear(hidden, w_out, b_out).sum().backward()

    def onednn_layers():
        hidden = onednn_linear_with_grad(h, w_hidden, b_hidden, "tanh")
        onednn_linear_with_grad(hidden, w_out, b_out).sum().backward()

    with torch.enable_grad():
        return best_times({"torch": torch_layers, "onednn": onednn_layers}, repeats)


class LinearFunction(torch.autograd.Function):
    """act(x W^T + b) with gradients: the forward product (tanh fused) and the input gradient
    G W through oneDNN, the weight gradient G^T x and bias gradient sum(G) through torch's own ops,
    as autograd forms them for ``nn.Linear`` (oneDNN was no faster for G^T x, whose inputs are
    transposed views). With tanh, G = tanh_backward(dL/dy, y) from the saved output, as for
    ``nn.Tanh``. When the backward pass is itself differentiated (``create_graph=True``, e.g. the
    semi-amortized guide's unrolled steps) it recomputes the layer with differentiable torch ops
    (``F.linear``, ``torch.tanh``) and forms the gradients from those, so second derivatives are
    those of ``nn.Linear`` + tanh."""

    @staticmethod
    def forward(ctx, x, weight, bias, activation):
        rows = x.reshape(-1, x.shape[-1])
        y = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, activation, [], "")
        ctx.activation = activation
        ctx.save_for_backward(x, weight, bias, y)
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, y = ctx.saved_tensors
        rows, g = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
        differentiated = torch.is_grad_enabled()
        if ctx.activation == "tanh":
            if differentiated:  # y again, as a function of x, W and b
                y = torch.tanh(torch.nn.functional.linear(rows, weight, bias))
            g = torch.ops.aten.tanh_backward(g, y)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if differentiated:
                grad_x = g.mm(weight)
            else:
                grad_x = torch.ops.mkldnn._linear_pointwise(g, weight.t(), None, "none", [], "")
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = g.t().mm(rows)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b, None


@eager_only  # as onednn_linear
def onednn_linear_with_grad(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            activation: str = "none") -> torch.Tensor:
    """``onednn_linear`` for training: differentiable in x, W and b (``LinearFunction``)."""
    _check_activation(activation)
    return LinearFunction.apply(x, weight, bias, activation)


# -- the choice of library for dense layers, and the evaluation chunk size that follows from it --
LINEAR_KERNELS = ("torch", "onednn")
LINEAR_ENV = "PYRO_AIR_LINEAR"
CHUNK_ENV = "PYRO_AIR_CHUNK_ELEMENTS"
CHUNK_ELEMENTS = (2 ** 20, 2 ** 21, 2 ** 22, 2 ** 23)  # 4 to 32 MiB per float32 [chunk, B, x_dim] tensor
ONEDNN_CHUNK_ELEMENTS = 2 ** 22  # chunk_elements: why
OFF_CPU_CHUNK_ELEMENTS = 2 ** 23  # unmeasured: a GPU has the memory, and fewer chunks mean fewer launches
LINEAR_CHOICES = {False: "linear", True: "linear_training"}  # without / with gradients
LINEAR_TRAINING_ENV = "PYRO_AIR_LINEAR_TRAINING"


def set_linear_kernel(name: str | None) -> None:
    """Force the dense-layer library for this process, evaluation and training (``None``: back to
    the environment / cache / measurement / default)."""
    if name is not None and name not in LINEAR_KERNELS:
        raise ValueError(f"unknown linear kernel {name!r}; use one of {', '.join(LINEAR_KERNELS)}")
    for key in LINEAR_CHOICES.values():
        CHOSEN.pop(key, None)
        if name is not None:
            CHOSEN[key] = {"kernel": name, "source": "set_linear_kernel"}


def linear_kernel(training: bool = False) -> str:
    """"torch" or "onednn": the library of this process's dense layers on the CPU (this module).

    Without gradients (evaluation) chosen by measurement: oneDNN only where this torch build has it
    and it took less than ``MARGIN`` of torch's time on an evaluation chunk (``measure_linear``;
    ``PYRO_AIR_LINEAR`` overrides). With gradients (``training``) torch's product unless
    ``PYRO_AIR_LINEAR_TRAINING=onednn`` opts in. Why training is opt-in: the gain of a training step
    through oneDNN is small and changes with the thread count (``measure_linear_training``; the
    numbers: docs/performance.md, "Measurements behind the code", "oneDNN dense layers"), too close
    for a one-time measurement to decide reliably, and another library changes every trained
    parameter at float rounding - so by default training keeps the bits of every committed result.
    """
    return linear_choice(training)["kernel"]


def linear_choice(training: bool = False) -> dict:
    """``linear_kernel``'s answer with its source (and measured times). A forced choice
    (``set_linear_kernel``, ``pinned_kernels``) holds for every thread count; otherwise the choice
    is per thread count, as the cache keys it, so that a process that changes its thread count
    uses what another process at that count reads from the cache."""
    key = LINEAR_CHOICES[bool(training)]
    if key in CHOSEN:
        return CHOSEN[key]
    per_threads = (key, torch.get_num_threads())
    if per_threads not in CHOSEN:
        CHOSEN[per_threads] = _resolve_linear_training() if training else _resolve_linear()
    return CHOSEN[per_threads]


def _resolve_linear() -> dict:
    if not onednn_available():
        return {"kernel": "torch", "source": "oneDNN is not available in this torch build"}
    return resolve_choice("linear", "kernel", LINEAR_ENV, LINEAR_KERNELS, "linear kernel",
                           lambda: measure_linear(), choose_linear)


def _resolve_linear_training() -> dict:
    forced = forced_choice(LINEAR_TRAINING_ENV, LINEAR_KERNELS, "linear kernel")
    if forced:
        if forced["kernel"] == "onednn" and not onednn_available():
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

    Why a rule and not a measurement of its own: the effect is a few percent, which a one-time probe
    of a few seconds could not tell from noise, while the mechanism follows the library: oneDNN's
    products gain from more rows and MKL's do not (the measurements: docs/performance.md,
    "Measurements behind the code", "Evaluation chunk size")."""
    if device is not None and torch.device(device).type != "cpu":
        return OFF_CPU_CHUNK_ELEMENTS
    return chunk_choice()["elements"]


def chunk_choice() -> dict:
    """``chunk_elements``'s CPU answer with its source."""
    if "chunk_elements" in CHOSEN:  # pinned
        return CHOSEN["chunk_elements"]
    forced = forced_choice(CHUNK_ENV, tuple(str(n) for n in CHUNK_ELEMENTS), "chunk size in elements",
                            "elements")
    if forced:
        return {**forced, "elements": int(forced["elements"])}
    library = linear_kernel()
    return {"elements": ONEDNN_CHUNK_ELEMENTS if library == "onednn" else CHUNK_ELEMENTS[0],
            "source": f"rule: the evaluation's dense layers run through {library}"}
