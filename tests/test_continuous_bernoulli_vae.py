"""ContinuousBernoulliVAE: log p(x, z) = log N(z; 0, I) + sum_d CB(x_d; sigmoid(decoder(z)_d)), x in [0, 1]."""
import pytest
import torch

from pyro_air import guides, models
from pyro_air.core.distributions import continuous_bernoulli_log_normalizer
from pyro_air.infer import log_importance_weights


def test_log_joint_is_the_prior_plus_the_normalized_bernoulli_cross_entropy():
    torch.manual_seed(0)
    model = models.build("continuous-bernoulli-vae", x_dim=6, z_dim=2, hidden=(8,))
    x, z = torch.rand(4, 6), torch.randn(3, 4, 2)
    logits = model.decoder(z)
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                + (x * logits - torch.nn.functional.softplus(logits)
                   + continuous_bernoulli_log_normalizer(logits)).sum(-1))
    assert torch.allclose(model.log_joint(x, z), expected, atol=1e-5)
    # differs from the (unnormalized) Bernoulli VAE of the same weights by exactly sum_d log C
    bernoulli = models.build("bernoulli-vae", x_dim=6, z_dim=2, hidden=(8,))
    bernoulli.load_state_dict(model.state_dict())
    gap = model.log_joint(x, z) - bernoulli.log_joint(x, z)
    assert torch.allclose(gap, continuous_bernoulli_log_normalizer(logits).sum(-1), atol=1e-5)


def test_traced_log_weights_equal_the_direct_ones_and_samples_lie_in_the_unit_interval():
    torch.manual_seed(1)
    model = models.build("continuous-bernoulli-vae", x_dim=6, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=6, z_dim=2, hidden=(8,))
    x = torch.rand(5, 6)
    lw = log_importance_weights(model, guide, x, num_particles=4)
    z = lw.guide_trace.nodes["z"]["value"]
    loc, scale = guide.loc_scale(x)
    q = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    assert torch.allclose(lw.log_w, model.log_joint(x, z) - q, atol=1e-5)
    means = model.sample(7)
    assert means.shape == (7, 6) and ((means > 0) & (means < 1)).all()


def test_data_outside_the_unit_interval_is_refused():
    model = models.build("continuous-bernoulli-vae", x_dim=3, z_dim=2, hidden=(4,))
    with pytest.raises(ValueError, match=r"needs grey levels x in \[0, 1\], but x has values in \[-0.5, 1\]"):
        model.validate(torch.tensor([[0.0, 1.0, -0.5]]))
