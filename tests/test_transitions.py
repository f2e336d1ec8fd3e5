"""AVO's gated Gaussian transitions (pyro_air/guides/transitions.py; Huang et al. 2018, section 4.2): stacked
weight-normalized layers, the gated mean and softplus scale, and their initialization."""
import math

import pytest
import torch
from torch import nn

from pyro_air.guides.transitions import MIN_STD, GatedGaussianTransitions, StackedWeightNormLinear


def test_stacked_layers_are_weight_normalized_and_start_as_their_direction():
    layer = StackedWeightNormLinear(3, 4, 5)
    w, b = layer.weights()
    assert w.shape == (3, 5, 4) and b.shape == (3, 5)
    torch.testing.assert_close(w, layer.direction)  # g = ||v|| at initialization: W = v
    with torch.no_grad():
        layer.log_gain.fill_(math.log(2.0))
    w, _ = layer.weights()
    torch.testing.assert_close(w.norm(dim=-1), torch.full((3, 5), 2.0))  # ||W_t row|| = g whatever v is
    torch.testing.assert_close(w / 2.0, layer.direction / layer.direction.norm(dim=-1, keepdim=True))
    assert StackedWeightNormLinear(2, 4, 5, bias=False).weights()[1] is None


def _with_zero_weights(transitions, *names):
    """g = 0 (log g = -inf) makes a layer's weights zero: its output is its bias alone."""
    with torch.no_grad():
        for name in names:
            getattr(transitions, name).log_gain.fill_(-math.inf)
    return transitions


def test_the_biases_start_the_operators_near_the_identity_with_unit_scale():
    """gate bias -1 and std bias log(e - 1): with zero gate and std weights, g = sigmoid(-1) and sigma = 1."""
    transitions = _with_zero_weights(GatedGaussianTransitions(2, 3, hidden=8), "gate", "std")
    weights = transitions.weights()
    z = torch.randn(5, 3)
    q = transitions.distribution(weights, 1, z)
    hidden = torch.relu(nn.functional.linear(z, weights["h_z"][0][1], weights["h_z"][1][1]))
    m = nn.functional.linear(hidden, weights["mean"][0][1], weights["mean"][1][1])
    g = torch.sigmoid(torch.tensor(-1.0))
    torch.testing.assert_close(q.mean, g * m + (1 - g) * z)
    torch.testing.assert_close(q.stddev, torch.full((5, 3), 1.0 + MIN_STD))
    assert q.batch_shape == (5,) and q.event_shape == (3,)


def test_operator_t_uses_the_t_th_parameters_only():
    transitions = GatedGaussianTransitions(3, 2, hidden=4)
    z = torch.randn(6, 2)
    q = transitions.distribution(transitions.weights(), 2, z)
    (q.mean.sum() + q.stddev.sum()).backward()
    for layer in (transitions.h_z, transitions.mean, transitions.gate, transitions.std):
        grad = layer.direction.grad
        assert grad[2].abs().sum() > 0 and torch.equal(grad[:2], torch.zeros_like(grad[:2]))


def test_the_scale_never_falls_below_its_floor():
    transitions = GatedGaussianTransitions(1, 2, hidden=4)
    with torch.no_grad():
        transitions.std.bias.fill_(-1e4)
    q = transitions.distribution(transitions.weights(), 0, torch.randn(3, 2))
    assert (q.stddev >= MIN_STD).all()


def test_the_context_enters_the_hidden_layer_of_every_operator():
    transitions = GatedGaussianTransitions(2, 3, hidden=8, context_dim=5)
    weights = transitions.weights()
    context = torch.randn(4, 5)
    term = transitions.precompute_context(weights, context)
    assert term.shape == (2, 4, 8)
    torch.testing.assert_close(term[1], context @ weights["h_c"][0][1].T)
    z = torch.randn(4, 3)
    with_context = transitions.distribution(weights, 1, z, term).mean
    without = transitions.distribution(weights, 1, z).mean
    assert not torch.allclose(with_context, without)
    with pytest.raises(ValueError, match="these transitions are conditioned on encoder features; pass the context"):
        transitions.precompute_context(weights, None)
    assert GatedGaussianTransitions(2, 3).precompute_context(GatedGaussianTransitions(2, 3).weights(), context) is None


def test_particles_broadcast_through_an_operator():
    transitions = GatedGaussianTransitions(1, 2, hidden=4)
    z = torch.randn(7, 5, 2)  # [K, B, z]
    q = transitions.distribution(transitions.weights(), 0, z)
    assert q.batch_shape == (7, 5)
    torch.testing.assert_close(q.mean[3], transitions.distribution(transitions.weights(), 0, z[3]).mean)


@pytest.mark.parametrize("kwargs,message", [
    ({"num": -1}, "number of transitions must be an integer >= 0, got -1"),
    ({"z_dim": 0}, "z_dim must be an integer >= 1, got 0"),
    ({"hidden": 0}, "transition hidden size must be an integer >= 1, got 0"),
    ({"context_dim": -2}, "context_dim must be an integer >= 0, got -2"),
    ({"act": "swish"}, "unknown activation 'swish'"),
])
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        GatedGaussianTransitions(**{"num": 2, "z_dim": 3, **kwargs})


def test_the_starting_gate_and_std_are_the_ones_asked_for_and_the_defaults_are_the_authors():
    """softplus(b_s) = initial_std exactly, b_g = gate_bias; by default std 1 (b_s = log(e - 1)) and b_g = -1.
    At a near-identity start (gate -4, std 0.05) the operator's scale stays near 0.05 and its mean near z."""
    import math

    default = GatedGaussianTransitions(3, 4, hidden=8)
    assert torch.allclose(default.std.bias, torch.full((3, 4), math.log(math.e - 1.0)))
    assert torch.all(default.gate.bias == -1.0)
    torch.manual_seed(0)
    near = GatedGaussianTransitions(3, 4, hidden=8, gate_bias=-4.0, initial_std=0.05)
    assert torch.allclose(torch.nn.functional.softplus(near.std.bias), torch.full((3, 4), 0.05))
    assert torch.all(near.gate.bias == -4.0)
    z = torch.randn(200, 4)
    with torch.no_grad():
        d = near.distribution(near.weights(), 1, z)
    assert 0.03 < float(d.base_dist.scale.mean()) < 0.08
    assert float((d.base_dist.loc - z).abs().mean()) < 0.1 * float(z.abs().mean())


@pytest.mark.parametrize("kwargs, message", [({"initial_std": 0.0}, "initial_std"), ({"initial_std": -1.0}, "initial_std"),
                                             ({"gate_bias": float("nan")}, "gate_bias must be a finite number")])
def test_a_bad_start_is_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GatedGaussianTransitions(2, 3, hidden=4, **kwargs)
