"""Dense layers through oneDNN (pyro_air.backend.onednn): the same function and the same gradients as
nn.Linear (+ tanh) to float rounding, chosen by measurement with an override; packed weights live
only as long as an evaluation."""
import json

import pytest
import torch
from torch.nn import functional as F

from pyro_air import guides, infer, models
from pyro_air.backend import choices, onednn, tanh
from pyro_air.backend.nets import mlp
from pyro_air.backend.onednn import onednn_available, onednn_linear, onednn_linear_with_grad
from pyro_air.backend.report import chosen_kernels, kernel_report, pinned_kernels
from pyro_air.evaluate import log_likelihood

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


@pytest.fixture
def linear_kernel_reset():
    yield
    onednn.set_linear_kernel(None)



def _layer(n_in, n_out, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_out, n_in, generator=g) / n_in ** 0.5, torch.randn(n_out, generator=g)


@needs_onednn
@pytest.mark.parametrize("shape", [(37, 50), (3, 13, 50)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_linear_is_nn_linear_to_float_rounding(shape, with_bias):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    w, b = _layer(50, 20)
    b = b if with_bias else None
    exact = F.linear(x.double(), w.double(), None if b is None else b.double())
    got = onednn_linear(x, w, b)
    assert got.shape == (*shape[:-1], 20) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=2e-6)
    torch.testing.assert_close(onednn_linear(x, w, b, "tanh").double(), torch.tanh(exact), rtol=0, atol=2e-6)


@needs_onednn
def test_the_fused_tanh_is_within_an_ulp_of_float64_tanh():
    x = torch.cat([torch.linspace(-12, 12, 20001), torch.logspace(-8, 0, 2001)])[:, None]
    y = onednn_linear(x, torch.ones(1, 1), None, "tanh")[:, 0].double()
    exact = torch.tanh(x[:, 0].double())
    assert (y - exact).abs().max() < 1.5e-7  # float32 spacing near 1 is 6e-8 (nets.Tanh's identity: 2e-7)
    assert ((y - exact).abs() / exact.abs().clamp_min(1e-30)).max() < 2.5e-7  # relative, near 0 too


def test_an_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of none, tanh"):
        onednn_linear(torch.ones(2, 3), torch.ones(4, 3), None, "relu")


@needs_onednn
def test_mlp_runs_through_onednn_and_matches_layer_by_layer(linear_kernel_reset):
    net = mlp((50, 30, 30, 20))
    z = torch.randn(4, 6, 50)
    layered = torch.nn.Sequential.forward(net, z).detach()  # nn.Linear and Tanh one by one
    onednn.set_linear_kernel("onednn")
    with torch.no_grad():
        fused, again = net(z), net(z)
    assert torch.equal(fused, again)  # deterministic
    torch.testing.assert_close(fused, layered, rtol=0, atol=2e-6)
    assert not torch.equal(fused, layered)  # a different summation order: it really ran elsewhere
    torch.testing.assert_close(net(z).detach(), layered, rtol=0, atol=2e-6)  # with gradients too


@needs_onednn
@pytest.mark.parametrize("activation", ["none", "tanh"])
def test_gradients_through_onednn_are_nn_linears_to_float_rounding(activation):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, 50, generator=g, requires_grad=True)
    w, b = (t.requires_grad_() for t in _layer(50, 20, seed=8))
    y = onednn_linear_with_grad(x, w, b, activation)
    exact = F.linear(x, w, b)
    exact = torch.tanh(exact) if activation == "tanh" else exact
    upstream = torch.randn(y.shape, generator=g)
    got = torch.autograd.grad(y, (x, w, b), upstream)
    expected = torch.autograd.grad(exact, (x, w, b), upstream, retain_graph=True)
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
    # differentiated twice (create_graph: the semi-amortized guide's unrolled steps)
    first = torch.autograd.grad(onednn_linear_with_grad(x, w, b, activation), x, upstream, create_graph=True)[0]
    first_exact = torch.autograd.grad(exact, x, upstream, create_graph=True)[0]
    second = torch.autograd.grad(first.pow(2).sum(), w)[0]
    second_exact = torch.autograd.grad(first_exact.pow(2).sum(), w)[0]
    torch.testing.assert_close(second, second_exact, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_training_through_onednn_is_deterministic_and_close_to_torchs_products(linear_kernel_reset):
    x = torch.bernoulli(torch.full((16, 12), 0.4), generator=torch.Generator().manual_seed(2))
    grads = {}
    for kernel in ("torch", "onednn", "onednn"):
        onednn.set_linear_kernel(kernel)
        torch.manual_seed(0)
        model = models.build("bernoulli-vae", x_dim=12, z_dim=2, hidden=(8,))
        guide = guides.build("gaussian", x_dim=12, z_dim=2, hidden=(8,))
        torch.manual_seed(1)
        infer.build("iwae", num_particles=3).differentiable_loss(model, guide, x).backward()
        got = [p.grad.clone() for p in [*model.parameters(), *guide.parameters()]]
        if kernel in grads:
            assert all(torch.equal(a, b) for a, b in zip(grads[kernel], got))  # the same bits again
        grads[kernel] = got
    for a, b in zip(grads["torch"], grads["onednn"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_autocast_runs_the_layers_one_by_one(linear_kernel_reset):
    onednn.set_linear_kernel("onednn")
    net = mlp((50, 30, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.randn(4, 50)).dtype == torch.bfloat16  # nn.Linear under autocast, not oneDNN's float32


@needs_onednn
def test_evaluation_through_onednn_is_the_same_estimate_to_float_rounding(linear_kernel_reset):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=12, z_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((9, 12), 0.4), generator=torch.Generator().manual_seed(3))
    values = {}
    for kernel in ("torch", "onednn"):
        onednn.set_linear_kernel(kernel)
        values[kernel] = log_likelihood(model, guide, x, num_samples=50, seed=4)
    torch.testing.assert_close(values["onednn"], values["torch"], rtol=1e-5, atol=1e-5)


def test_onednn_is_chosen_only_when_it_clearly_wins():
    assert onednn.choose_linear({"torch": 1.0, "onednn": 0.7}) == "onednn"
    assert onednn.choose_linear({"torch": 1.0, "onednn": 0.95}) == "torch"  # within the margin
    assert onednn.choose_linear({"torch": 0.7, "onednn": 1.0}) == "torch"


@needs_onednn
def test_the_linear_choice_is_measured_once_cached_and_overridable(fresh_choice, monkeypatch):
    from pyro_air.backend import onednn
    calls = []
    monkeypatch.setattr(onednn, "measure_linear", lambda: calls.append(1) or {"torch": 2.0, "onednn": 1.0})
    assert onednn.linear_kernel() == "onednn"
    entry, = json.loads((fresh_choice / "kernels.json").read_text()).values()
    assert entry["linear"] == "onednn" and entry["linear_times"] == {"torch": 2.0, "onednn": 1.0}
    choices.forget_choices()  # a new process: the cache answers
    assert onednn.linear_kernel() == "onednn" and len(calls) == 1
    assert kernel_report()["linear"]["source"].startswith("cache")
    choices.forget_choices()
    monkeypatch.setenv(onednn.LINEAR_ENV, "torch")
    assert onednn.linear_kernel() == "torch"
    choices.forget_choices()
    monkeypatch.setenv(onednn.LINEAR_ENV, "blas")
    with pytest.raises(ValueError, match="PYRO_AIR_LINEAR='blas' is not a linear kernel; use one of torch, onednn"):
        onednn.linear_kernel()
    with pytest.raises(ValueError, match="unknown linear kernel"):
        onednn.set_linear_kernel("blas")


@needs_onednn
def test_training_keeps_torchs_product_unless_asked(fresh_choice, monkeypatch):
    monkeypatch.delenv(onednn.LINEAR_TRAINING_ENV, raising=False)
    monkeypatch.setenv(onednn.LINEAR_ENV, "onednn")
    assert onednn.linear_kernel() == "onednn" and onednn.linear_kernel(training=True) == "torch"
    assert "opt in" in kernel_report()["linear_training"]["source"]
    choices.forget_choices()
    monkeypatch.setenv(onednn.LINEAR_TRAINING_ENV, "onednn")
    assert onednn.linear_kernel(training=True) == "onednn"
    choices.forget_choices()
    monkeypatch.setenv(onednn.LINEAR_TRAINING_ENV, "fast")
    with pytest.raises(ValueError, match="PYRO_AIR_LINEAR_TRAINING='fast' is not a linear kernel"):
        onednn.linear_kernel(training=True)


def test_without_onednn_the_choice_is_torch_and_says_why(fresh_choice, monkeypatch):
    from pyro_air.backend import onednn
    monkeypatch.setattr(onednn, "onednn_available", lambda: False)
    monkeypatch.setattr(onednn, "measure_linear", lambda: pytest.fail("measured without oneDNN"))
    assert onednn.linear_kernel() == "torch" and onednn.linear_kernel(training=True) == "torch"
    assert "not available" in kernel_report()["linear"]["source"]


@needs_onednn
def test_packed_weights_are_reused_only_inside_an_evaluation_block():
    from pyro_air.backend import onednn
    layer = torch.nn.Linear(30, 20)
    x = torch.randn(40, 30, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        first = onednn_linear(x, layer.weight, layer.bias)
        assert onednn.packed_weight(layer.weight, 40) is layer.weight and not onednn.held_packs()  # outside: no packs
        with onednn.reusing_packed_weights():
            packed = onednn.packed_weight(layer.weight, 40)
            assert packed is not layer.weight and onednn.packed_weight(layer.weight, 40) is packed  # reused
            assert torch.equal(onednn_linear(x, layer.weight, layer.bias), first)
            with onednn.reusing_packed_weights():  # nested: the outer block keeps its packs
                pass
            assert onednn.packed_weight(layer.weight, 40) is packed
            layer.weight.mul_(2)  # an in-place change that increments the version: packed again
            assert onednn.packed_weight(layer.weight, 40) is not packed
        assert not onednn.held_packs()  # dropped at the end of the block


def test_fused_adam_changes_parameters_without_a_new_version():
    """Why packs cannot outlive an evaluation: a training step may leave the version counter alone."""
    from pyro_air.train import make_adam
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = make_adam([p], 0.1)
    before, version = p.detach().clone(), p._version
    p.grad = torch.ones(3)
    optimizer.step()
    assert not torch.equal(p.detach(), before)
    if optimizer.defaults.get("fused"):
        assert p._version == version


@needs_onednn
def test_validation_inside_fit_sees_every_optimizer_step(linear_kernel_reset):
    """Two evaluations with training between them: the second uses the new weights."""
    from pyro_air.train import make_adam
    onednn.set_linear_kernel("onednn")
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=12, z_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((20, 12), 0.4), generator=torch.Generator().manual_seed(3))
    optimizer = make_adam([*model.parameters(), *guide.parameters()], 0.1)
    before = log_likelihood(model, guide, x, num_samples=20, seed=4)
    for _ in range(3):
        optimizer.zero_grad()
        infer.build("elbo").differentiable_loss(model, guide, x).backward()
        optimizer.step()
    after = log_likelihood(model, guide, x, num_samples=20, seed=4)
    onednn.set_linear_kernel("torch")
    torch.testing.assert_close(after, log_likelihood(model, guide, x, num_samples=20, seed=4), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, before)


@needs_onednn
def test_results_do_not_depend_on_which_products_came_before():
    """Packs are per row count, so a product gives the same bits whatever ran before it."""
    from pyro_air.backend import onednn
    w, b = _layer(50, 30, seed=6)
    xs = {rows: torch.randn(rows, 50, generator=torch.Generator().manual_seed(rows)) for rows in (1, 7, 300)}
    with onednn.reusing_packed_weights():
        forward = {rows: onednn_linear(x, w, b, "tanh") for rows, x in xs.items()}
    with onednn.reusing_packed_weights():
        backward = {rows: onednn_linear(x, w, b, "tanh") for rows, x in reversed(list(xs.items()))}
    assert all(torch.equal(forward[rows], backward[rows]) for rows in xs)
    unpacked = {rows: onednn_linear(x, w, b, "tanh") for rows, x in xs.items()}
    assert all(torch.equal(forward[rows], unpacked[rows]) for rows in xs if rows > 1)


@needs_onednn
def test_a_packed_weight_is_dropped_with_its_weight():
    import gc

    from pyro_air.backend import onednn
    layer = torch.nn.Linear(30, 20)
    with torch.no_grad(), onednn.reusing_packed_weights():
        onednn_linear(torch.randn(9, 30), layer.weight, layer.bias)
        key = (id(layer.weight), 9)
        assert key in onednn.held_packs()
        del layer
        gc.collect()
        assert key not in onednn.held_packs()


def test_pinned_kernels_apply_inside_and_restore_after(linear_kernel_reset):
    onednn.set_linear_kernel("onednn")
    tanh.set_tanh_kernel("sigmoid")
    both = {"linear": "onednn", "linear_training": "onednn"}
    try:
        with pinned_kernels({"linear": "torch"}):
            assert chosen_kernels() == {"tanh": "sigmoid", "linear": "torch", "linear_training": "onednn",
                                                "chunk_elements": 2 ** 20}  # the chunk follows the library
            with pinned_kernels({"tanh": "torch", "linear": "onednn"}):
                assert chosen_kernels() == {"tanh": "torch", **both, "chunk_elements": 2 ** 22}
            assert chosen_kernels()["linear"] == "torch"
        assert chosen_kernels() == {"tanh": "sigmoid", **both, "chunk_elements": 2 ** 22}
        with pytest.raises(ValueError, match="unknown kernel choice"):
            with pinned_kernels({"gemm": "mkl"}):
                pass
        with pytest.raises(ValueError, match="unknown kernel"):
            with pinned_kernels({"linear": "mkl"}):
                pass
    finally:
        tanh.set_tanh_kernel(None)


@needs_onednn
def test_the_choice_follows_the_thread_count_as_the_cache_does(fresh_choice, monkeypatch):
    """A process that chose at 2 threads and then runs at 1 uses the 1-thread choice, as another
    process at 1 thread reading the cache does (the resume and signal tests run such pairs)."""
    from pyro_air.backend import onednn
    monkeypatch.setattr(onednn, "measure_linear", lambda: {"torch": 1.0, "onednn": 0.5 * torch.get_num_threads()})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert onednn.linear_kernel() == "torch"  # 1.0 vs 1.0 at 2 threads
        torch.set_num_threads(1)
        assert onednn.linear_kernel() == "onednn"  # 1.0 vs 0.5 at 1 thread
        onednn.set_linear_kernel("torch")  # a forced choice holds at every count
        assert onednn.linear_kernel() == "torch"
    finally:
        torch.set_num_threads(before)
        onednn.set_linear_kernel(None)
