"""MIWAE, PIWAE, CIWAE (pyro_air/infer/miwae.py; Rainforth et al. 2018): exact reductions to
IWAE / ELBO at the boundary settings (values and gradients), the bounds' ordering, PIWAE's split
of gradients between decoder and encoder, and bad input."""
import math

import pytest
import torch

from pyro_air import guides, infer, models
from tests.conftest import binary_batch


def _pair():
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=3, hidden=[8])
    guide = guides.build("gaussian", x_dim=12, z_dim=3, hidden=[8])
    return model, guide, binary_batch(n=5, d=12)


def _loss_and_grads(objective, model, guide, x, seed=7):
    for p in [*model.parameters(), *guide.parameters()]:
        p.grad = None
    torch.manual_seed(seed)
    loss = objective.differentiable_loss(model, guide, x, num_data=50)
    loss.backward()
    return (loss.detach(), [p.grad.clone() for p in model.parameters()],
            [p.grad.clone() for p in guide.parameters()])


def _identical(a, b):
    return torch.equal(a[0], b[0]) and all(torch.equal(u, v) for u, v in zip(a[1] + a[2], b[1] + b[2]))


@pytest.mark.parametrize("estimator", ["standard", "dreg", "stl"])
def test_miwae_with_one_group_is_iwae(estimator):
    model, guide, x = _pair()
    a = _loss_and_grads(infer.build("miwae", num_groups=1, group_size=4, estimator=estimator), model, guide, x)
    b = _loss_and_grads(infer.build("iwae", num_particles=4, estimator=estimator), model, guide, x)
    assert _identical(a, b)


def test_miwae_with_groups_of_one_is_the_elbo():
    model, guide, x = _pair()
    a = _loss_and_grads(infer.build("miwae", num_groups=4, group_size=1), model, guide, x)
    b = _loss_and_grads(infer.build("elbo", num_particles=4), model, guide, x)
    assert _identical(a, b)


@pytest.mark.parametrize("beta,reference", [(0.0, ("iwae", {"num_particles": 4})),
                                            (1.0, ("elbo", {"num_particles": 4}))])
def test_ciwae_at_its_ends_is_iwae_or_the_elbo(beta, reference):
    model, guide, x = _pair()
    a = _loss_and_grads(infer.build("ciwae", beta=beta, num_particles=4), model, guide, x)
    b = _loss_and_grads(infer.build(reference[0], **reference[1]), model, guide, x)
    assert _identical(a, b)


def test_piwae_with_one_group_is_iwae():
    model, guide, x = _pair()
    a = _loss_and_grads(infer.build("piwae", num_groups=1, group_size=4), model, guide, x)
    b = _loss_and_grads(infer.build("iwae", num_particles=4), model, guide, x)
    assert _identical(a, b)


def test_bounds_on_fixed_weights_match_their_formulas_and_order():
    """ELBO <= CIWAE(beta) <= IWAE-K, and ELBO <= MIWAE(M, K) <= IWAE-(M K) on the same draws."""
    log_w = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 3
    w = log_w.double().exp()
    miwae = infer.miwae_bound(log_w, 2)
    expected = (w[:3].mean(0).log() + w[3:].mean(0).log()) / 2
    assert torch.allclose(miwae.double(), expected, atol=1e-5)
    elbo, iwae = log_w.mean(0), infer.iwae_bound(log_w)
    assert (elbo <= miwae + 1e-6).all() and (miwae <= iwae + 1e-6).all()
    ciwae = infer.ciwae_bound(log_w, 0.3)
    assert torch.allclose(ciwae, 0.3 * elbo + 0.7 * iwae)
    assert (elbo <= ciwae + 1e-6).all() and (ciwae <= iwae + 1e-6).all()


def test_piwae_gives_the_decoder_iwae_mk_and_the_encoder_miwae():
    """On the same M K draws: PIWAE's model gradient is IWAE-(M K)'s, its guide gradient MIWAE(M, K)'s,
    and its value IWAE-(M K)'s."""
    model, guide, x = _pair()
    piwae = _loss_and_grads(infer.build("piwae", num_groups=3, group_size=2), model, guide, x)
    iwae = _loss_and_grads(infer.build("iwae", num_particles=6), model, guide, x)
    miwae = _loss_and_grads(infer.build("miwae", num_groups=3, group_size=2), model, guide, x)
    assert piwae[0].item() == pytest.approx(iwae[0].item(), rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(piwae[1], iwae[1]))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(piwae[2], miwae[2]))
    # and they are different objectives: the guide gradients of IWAE-6 and MIWAE(3, 2) differ
    assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(iwae[2], miwae[2]))


def test_loss_is_the_scaled_negative_bound():
    model, guide, x = _pair()
    objective = infer.build("miwae", num_groups=2, group_size=3)
    torch.manual_seed(1)
    loss = objective.loss(model, guide, x, num_data=50)
    torch.manual_seed(1)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=6, num_data=50).log_w
    assert loss == pytest.approx(-10.0 * infer.miwae_bound(log_w, 2).sum().item(), rel=1e-6)
    assert math.isfinite(infer.build("ciwae", beta=0.5, num_particles=3).loss(model, guide, x))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match=r"num_groups \(M.*\) must be an integer >= 1, got 0"):
        infer.build("miwae", num_groups=0, group_size=2)
    with pytest.raises(ValueError, match=r"group_size \(K.*\) must be an integer >= 1, got 2.5"):
        infer.build("piwae", num_groups=2, group_size=2.5)
    with pytest.raises(ValueError, match="unknown IWAE gradient estimator 'vimco'"):
        infer.build("miwae", num_groups=2, group_size=2, estimator="vimco")
    with pytest.raises(ValueError, match=r"beta .* must lie in \[0, 1\], got 1.5"):
        infer.build("ciwae", beta=1.5)
