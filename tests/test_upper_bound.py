"""Upper bounds of log p(x) (pyro_air/evaluate/upper_bound.py): CUBO_n and VR-alpha (alpha < 0) against the
linear-Gaussian closed forms."""
import pytest
import torch

from pyro_air.evaluate import log_likelihood, upper_bound
from pyro_air.guides import ExactPosteriorGuide
from tests import outside_models


def test_exact_guide_makes_upper_bounds_exact(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x)
    for method in ("cubo", "vr"):
        assert torch.allclose(upper_bound(model, exact_guide, x, method=method, num_samples=30), exact, atol=1e-4)


def test_upper_bounds_sandwich_log_px(linear_gaussian):
    model, x = linear_gaussian
    broad = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.2)
    exact = model.exact_log_likelihood(x).detach()
    torch.manual_seed(3)
    cubo = upper_bound(model, broad, x, method="cubo", n=2, num_samples=5000, chunk_size=2500)
    torch.manual_seed(3)
    vr = upper_bound(model, broad, x, method="vr", alpha=-1.0, num_samples=5000, chunk_size=2500)
    assert torch.allclose(cubo, vr, atol=1e-4)  # CUBO_2 is VR at alpha = -1, same samples
    lower = log_likelihood(model, broad, x, num_samples=5)
    assert (cubo - exact).mean() > 0 and (exact - lower).mean() > 0
    # larger n gives a looser (higher) bound (Dieng et al.: the CUBO-ELBO gap grows with n)
    torch.manual_seed(3)
    cubo3 = upper_bound(model, broad, x, method="cubo", n=3, num_samples=5000, chunk_size=2500)
    assert (cubo3 >= cubo - 1e-5).all()


def test_the_estimate_does_not_depend_on_the_chunking(linear_gaussian):
    """The streamed log-mean-exp over chunks of samples is the one over all samples: a seed fixes the draws
    of each batch, however they are split into chunks."""
    model, x = linear_gaussian
    broad = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.2)
    whole = upper_bound(model, broad, x, num_samples=60, chunk_size=60, seed=4)
    chunked = upper_bound(model, broad, x, num_samples=60, chunk_size=7, seed=4)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert torch.equal(whole, upper_bound(model, broad, x, num_samples=60, chunk_size=60, seed=4))


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "chi"}, "unknown upper-bound method 'chi'; choose one of cubo, vr"),
    ({"method": "cubo", "n": 1.0}, "CUBO_n is an upper bound only for n > 1, got n=1.0"),
    ({"method": "vr", "alpha": 0.5}, "the VR bound is above log p(x) only for alpha < 0, got alpha=0.5"),
])
def test_upper_bound_errors(linear_gaussian, exact_guide, kwargs, message):
    model, x = linear_gaussian
    with pytest.raises(ValueError) as err:
        upper_bound(model, exact_guide, x, num_samples=5, **kwargs)
    assert str(err.value) == message


def test_a_model_with_global_latents_is_refused():
    case = outside_models.factor()
    with pytest.raises(ValueError) as err:
        upper_bound(case.model, case.guide, case.data(6), num_samples=10)
    assert str(err.value) == ("site(s) 'mu' lie outside the data plate 'batch': an upper bound has no per-datapoint "
                              "form over global latents; use log_likelihood")
