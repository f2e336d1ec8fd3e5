"""Invalid hyperparameters of guides and objectives: a clear ValueError at construction.

One test per row of docs/errors.md (each message names the parameter, the value and a fix).
"""
import pytest

from pyro_air import guides, infer

SMALL = dict(x_dim=4, z_dim=2, hidden=[3])


def test_denoising_sigma_must_be_non_negative():
    with pytest.raises(ValueError, match=r"sigma .* must be >= 0, got -0.1; pick a noise standard deviation"):
        guides.build("denoising", sigma=-0.1, encoder="gaussian", **SMALL)


def test_denoising_alpha_must_lie_in_the_unit_interval():
    with pytest.raises(ValueError, match=r"alpha .*Eq. 16.* must lie in \[0, 1\], got 1.5"):
        guides.build("denoising", sigma=0.1, alpha=1.5, encoder="gaussian", **SMALL)


def test_weightnorm_cap_must_be_positive():
    with pytest.raises(ValueError, match=r"H .*Eq. 18.* must be > 0, got 0.0; pick a positive cap"):
        guides.build("weightnorm", H=0.0, **SMALL)


def test_infovae_lambda_must_be_positive():
    with pytest.raises(ValueError, match=r"lam .* must be > 0, got 0.0"):
        infer.build("infovae", lam=0.0)


def test_hierarchical_guide_needs_non_negative_transitions():
    with pytest.raises(ValueError, match=r"num_transitions must be an integer >= 0 .*got -1"):
        guides.build("hierarchical", num_transitions=-1, **SMALL)


def test_renyi_alpha_one_points_to_the_elbo():
    with pytest.raises(ValueError, match=r"alpha = 1 .*use pyro_air.infer.MonteCarloELBO"):
        infer.build("renyi", alpha=1.0)


def test_cubo_needs_n_above_one():
    with pytest.raises(ValueError, match=r"pass a finite n > 1 .*got n=1.0"):
        infer.build("cubo", n=1.0)


def test_unknown_iwae_estimator():
    with pytest.raises(ValueError, match=r"unknown IWAE gradient estimator 'reinforce'; choose one of standard, dreg, stl"):
        infer.build("iwae", estimator="reinforce")


def test_avo_probability_must_lie_in_the_unit_interval():
    with pytest.raises(ValueError, match=r"a \(the probability of an AVO step\) must lie in \[0, 1\], got 1.5"):
        infer.build("avo", num_transitions=2, a=1.5)


def test_unknown_mmd_kernel():
    with pytest.raises(ValueError, match=r"unknown kernel 'laplace'; use one of rbf, imq"):
        infer.build("infovae", kernel="laplace")
