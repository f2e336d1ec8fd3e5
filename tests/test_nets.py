"""The network builders: the CPU tanh through 2 sigmoid(2x) - 1 (pyro_air.backend.nets.Tanh)."""
import pytest
import torch
from torch import nn

from pyro_air.backend import onednn, tanh
from pyro_air.backend.nets import Tanh, activation, mlp


@pytest.fixture(autouse=True, params=tanh.TANH_KERNELS)
def tanh_kernel(request):
    """Every test runs with both CPU tanh kernels, whichever this machine would choose, and torch's
    own dense-layer product (oneDNN's fused path is tests/test_onednn.py's)."""
    tanh.set_tanh_kernel(request.param)
    onednn.set_linear_kernel("torch")
    yield request.param
    tanh.set_tanh_kernel(None)
    onednn.set_linear_kernel(None)


def test_tanh_is_within_float32_rounding_of_the_exact_tanh():
    x = torch.linspace(-30.0, 30.0, 600_001)
    exact = torch.tanh(x.double())
    ours = Tanh()(x).double()
    assert (ours - exact).abs().max().item() <= 2.5e-7
    assert ours.min().item() == -1.0 and ours.max().item() == 1.0  # saturates exactly, never beyond


def test_tanh_is_odd_up_to_rounding_and_zero_at_zero():
    x = torch.randn(10_000) * 3
    assert (Tanh()(x) + Tanh()(-x)).abs().max().item() <= 2.5e-7
    assert Tanh()(torch.zeros(3)).abs().max().item() <= 1e-7


def test_tanh_gradients_match_torch_tanh_first_and_second_order():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Tanh(), (x,))
    assert torch.autograd.gradgradcheck(Tanh(), (x,))
    x32 = torch.randn(200, 50, requires_grad=True)
    (g_ours,) = torch.autograd.grad(Tanh()(x32).sum(), x32)
    (g_ref,) = torch.autograd.grad(torch.tanh(x32).sum(), x32)
    torch.testing.assert_close(g_ours, g_ref, atol=5e-7, rtol=0)


def test_tanh_leaves_its_input_untouched():
    x = torch.randn(100)
    before = x.clone()
    Tanh()(x)
    assert torch.equal(x, before)


def test_mlp_state_dict_is_the_same_as_with_nn_tanh():
    ours = mlp((5, 7, 3), act="tanh")
    reference = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    assert list(ours.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(11, 5)
    torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=0)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="elu, relu, softplus, tanh"):
        activation("gelu")


@pytest.mark.parametrize("shape", [(1330, 50), (133, 10, 50), (7, 50), (3, 2, 5, 50), (50,)])
def test_mlp_without_gradients_is_the_layer_by_layer_result_bit_for_bit(shape):
    """The no-grad CPU pass (``linear_tanh_no_grad``: 2a from the GEMM, two in-place passes) gives
    exactly the numbers of running the layers one by one, with gradients on or off."""
    torch.manual_seed(0)
    net = mlp((50, 64, 64, 30), act="tanh", final_activation=True)
    z = torch.randn(*shape) * 2
    with_grad = nn.Sequential.forward(net, z)
    with torch.no_grad():
        fused, layered = net(z), nn.Sequential.forward(net, z)
    assert torch.equal(fused, layered) and torch.equal(fused, with_grad.detach())


def test_mlp_without_gradients_handles_other_layouts_and_modules():
    torch.manual_seed(1)
    net = mlp((6, 8, 4), act="relu")  # no Tanh: every layer runs as it is
    z = torch.randn(5, 3, 6).transpose(0, 1)  # non-contiguous 3-D input: layer by layer
    tanh_net = mlp((6, 8, 4), act="tanh")
    with torch.no_grad():
        assert torch.equal(net(z), nn.Sequential.forward(net, z))
        assert torch.equal(tanh_net(z), nn.Sequential.forward(tanh_net, z))
        assert torch.equal(tanh_net(z.contiguous()), nn.Sequential.forward(tanh_net, z.contiguous()))


def test_gated_mlp_is_the_gated_dense_formula():
    """act="gated": h = (W x + b) * sigmoid(V x + c) in every hidden layer (Dauphin et al. 2017, Eq. 1),
    a plain linear output layer; with final_activation (an encoder's features) every layer is gated."""
    from pyro_air.backend.nets import GatedDense

    torch.manual_seed(0)
    net = mlp((5, 7, 3), act="gated")
    assert [type(m) for m in net] == [GatedDense, nn.Linear]
    x = torch.randn(11, 5)
    w, b = net[0].linear.weight, net[0].linear.bias
    h = (x @ w[:7].T + b[:7]) * torch.sigmoid(x @ w[7:].T + b[7:])
    torch.testing.assert_close(net(x), net[1](h))
    with torch.no_grad():  # the evaluation path of MLP.forward gives the same numbers
        torch.testing.assert_close(net(x), net[1](h))
    features = mlp((5, 7, 4), act="gated", final_activation=True)
    assert [type(m) for m in features] == [GatedDense, GatedDense]


def test_gated_is_no_elementwise_activation_and_tanh_models_are_unchanged():
    with pytest.raises(ValueError, match="gated dense layers"):
        activation("gated")
    torch.manual_seed(0)
    before = mlp((5, 7, 3)).state_dict()
    torch.manual_seed(0)
    again = mlp((5, 7, 3), act="tanh").state_dict()
    assert list(before) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(torch.equal(before[k], again[k]) for k in before)


def test_a_run_spec_names_the_gated_or_relu_networks():
    from pyro_air.backend.nets import GatedDense
    from pyro_air.evaluate import log_likelihood
    from pyro_air.runs import build_run, vae_spec

    x = torch.bernoulli(torch.full((3, 784), 0.3))
    for act, layer in (("gated", GatedDense), ("relu", nn.ReLU), ("elu", nn.ELU), ("softplus", nn.Softplus)):
        spec = vae_spec(z_dim=4, hidden=(8,))
        spec["model"]["cfg"]["activation"] = act
        spec["guide"]["cfg"]["activation"] = act
        model, guide, _ = build_run(spec, seed=0)
        assert any(type(m) is layer for m in model.decoder) and any(type(m) is layer for m in guide.features)
        assert torch.isfinite(log_likelihood(model, guide, x, num_samples=3, seed=0)).all()
