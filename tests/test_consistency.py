"""The consistency-regularized encoder (CR-VAE, Sinha & Dieng 2021) and its objective wrapper."""
import pyro
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.guides import ConsistencyEncoder, GaussianEncoder
from pyro_air.guides.consistency import gaussian_kl, random_affine
from pyro_air.infer import ConsistencyRegularized
from tests.conftest import binary_batch


def _setup(transform="shift", **kw):
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    encoder = GaussianEncoder(784, 3, hidden=[16])
    return model, encoder, ConsistencyEncoder(encoder, transform=transform, **kw), binary_batch(n=8)


def test_gaussian_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    s1, s2 = torch.rand(4, 3, generator=g) + 0.2, torch.rand(4, 3, generator=g) + 0.2
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, s1),
                                                 torch.distributions.Normal(m2, s2)).sum(-1)
    assert torch.allclose(gaussian_kl(m1, s1, m2, s2), expected, atol=1e-6)


def test_penalty_is_zero_for_the_identity_and_positive_otherwise():
    _, _, identity, x = _setup("identity")
    assert torch.equal(identity.penalty(x), torch.zeros(8))
    for transform in ("shift", "affine"):
        _, _, guide, x = _setup(transform)
        pyro.set_rng_seed(1)
        penalty = guide.penalty(x)
        assert penalty.shape == (8,)
        assert (penalty > 0).all(), transform


def test_shift_moves_pixels_by_whole_pixels_without_changing_values():
    x = binary_batch(n=64, p=0.5, seed=3)
    torch.manual_seed(0)
    moved = random_affine(x, (28, 28), max_shift=2, max_degrees=0.0, integer=True)
    assert set(moved.unique().tolist()) <= {0.0, 1.0}
    # each moved image equals the original rolled by some (dy, dx) in [-2, 2]^2 on the interior
    img, out = x.reshape(64, 28, 28), moved.reshape(64, 28, 28)
    for b in range(64):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(img[b], (dy, dx), (0, 1))[2:-2, 2:-2], out[b, 2:-2, 2:-2])]
        assert found, b


def test_zero_weight_is_exactly_the_plain_objective():
    """Neutral setting: lambda = 0 gives the wrapped encoder's objective bit for bit (values and gradients)."""
    model, encoder, guide, x = _setup()
    pyro.set_rng_seed(3)
    plain = infer.build("elbo", num_particles=2).differentiable_loss(model, encoder, x, num_data=100)
    plain_grad = torch.autograd.grad(plain, list(encoder.parameters()))
    pyro.set_rng_seed(3)
    wrapped = ConsistencyRegularized(infer.build("elbo", num_particles=2), weight=0.0).differentiable_loss(
        model, guide, x, num_data=100)
    wrapped_grad = torch.autograd.grad(wrapped, list(encoder.parameters()))
    assert torch.equal(plain, wrapped)
    assert all(torch.equal(a, b) for a, b in zip(plain_grad, wrapped_grad))


def test_loss_adds_the_scaled_penalty():
    model, _encoder, guide, x = _setup()
    objective = ConsistencyRegularized(infer.build("elbo"), weight=0.7)
    pyro.set_rng_seed(5)
    total = objective.differentiable_loss(model, guide, x, num_data=100)
    pyro.set_rng_seed(5)
    base = infer.build("elbo").differentiable_loss(model, guide, x, num_data=100)
    penalty = guide.penalty(x)  # the same RNG position: the base loss drew first
    assert torch.allclose(total, base + 0.7 * (100 / 8) * penalty.sum(), rtol=1e-6)


def test_penalty_trains_the_encoder_towards_invariance():
    """Minimizing the penalty alone makes the encoder less sensitive to shifts of its input."""
    _, _encoder, guide, _ = _setup()
    x = binary_batch(n=32, seed=4)
    torch.manual_seed(0)
    before = guide.penalty(x).mean().item()
    opt = torch.optim.Adam(guide.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        guide.penalty(x).mean().backward()
        opt.step()
    torch.manual_seed(0)
    assert guide.penalty(x).mean().item() < 0.5 * before


def test_registry_and_svi():
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    guide = guides.build("consistency", x_dim=784, z_dim=3, hidden=[16], max_shift=1)
    objective = infer.build("consistency", objective="iwae", num_particles=3, weight=0.5)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), objective)
    loss = svi.step(binary_batch(n=8), num_data=100)
    assert torch.isfinite(torch.tensor(loss))
    # the penalty reached the encoder's parameters through SVI's parameter collection
    assert any(name.startswith("guide.encoder") for name in pyro.get_param_store())


@pytest.mark.parametrize("build,error,match", [
    (lambda: ConsistencyRegularized(infer.build("elbo"), weight=-1.0), ValueError, "weight"),
    (lambda: ConsistencyRegularized("elbo"), ValueError, "wraps an objective"),
    (lambda: ConsistencyEncoder(GaussianEncoder(784, 3, hidden=[4]), transform="blur"), ValueError, "transform"),
    (lambda: ConsistencyEncoder(GaussianEncoder(784, 3, hidden=[4]), max_shift=1.5), ValueError, "integer"),
    (lambda: ConsistencyEncoder(GaussianEncoder(10, 3, hidden=[4])), ValueError, "square"),
    (lambda: ConsistencyEncoder(GaussianEncoder(10, 3, hidden=[4]), image_shape=(3, 3)), ValueError, "x_dim"),
    (lambda: ConsistencyEncoder("gaussian"), TypeError, "AmortizedGuide"),
])
def test_bad_hyper_parameters(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_guide_without_penalty_is_refused():
    model, encoder, _, x = _setup()
    with pytest.raises(TypeError, match="penalty"):
        ConsistencyRegularized(infer.build("elbo"), weight=1.0).loss(model, encoder, x)
