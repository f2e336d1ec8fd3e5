"""Guides: the encoders' hyper-parameters and what a guide needs of its model.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.table import Case, raised

TITLE = "Guides"


SMALL = {"x_dim": 4, "z_dim": 2, "hidden": [3]}


def _guide(name, **cfg):
    from pyro_air import guides
    return lambda tmp, mp: raised(guides.build, name, **cfg)


def _consistency_unknown_transform(tmp, monkeypatch):
    from pyro_air import guides

    return raised(guides.build, "consistency", transform="blur", x_dim=784, z_dim=2, hidden=(8,))


def _semi_amortized_bad_lr(tmp, monkeypatch):
    from pyro_air import guides

    return raised(guides.build, "semi-amortized", lr=0.0, x_dim=784, z_dim=2, hidden=(8,))


def _semi_amortized_without_log_joint(tmp, monkeypatch):
    from pyro_air import guides, infer, models

    model = models.build("energy", energy="u1")
    guide = guides.build("semi-amortized", x_dim=model.x_dim, z_dim=model.z_dim, hidden=(8,))
    return raised(infer.build("elbo").loss, model, guide, torch.zeros(4, 1))


def _spectral_bad_bound(tmp, monkeypatch):
    from pyro_air import guides

    return raised(guides.build, "spectral-norm", bound=0.0, x_dim=784, z_dim=2, hidden=(8,))


CASES = [
    Case("denoising-sigma", "denoising noise σ < 0", "ValueError",
         "sigma (the denoising noise scale) must be >= 0, got -0.1; pick a noise standard deviation such as "
         "sigma=0.3 (0 = no noise)", _guide("denoising", sigma=-0.1, encoder="gaussian", **SMALL)),
    Case("denoising-alpha", "denoising weight α outside [0, 1]", "ValueError",
         "alpha (the weight of the noisy objective, Eq. 16) must lie in [0, 1], got 1.5; use alpha=1.0 for full "
         "denoising, 0.5 for half", _guide("denoising", sigma=0.1, alpha=1.5, encoder="gaussian", **SMALL)),
    Case("weightnorm-cap", "weight-norm cap H ≤ 0", "ValueError",
         "H (the weight-norm cap of Eq. 18) must be > 0, got 0.0; pick a positive cap such as H=5 (smaller H = "
         "stronger regularization)", _guide("weightnorm", H=0.0, **SMALL)),
    Case("weightnorm-cap-infinite", "weight-norm cap H = inf", "ValueError",
         "H (the weight-norm cap of Eq. 18) must be finite, got inf: an infinite cap is no cap; use the plain encoder "
         "(guide 'gaussian') or a finite H such as H=5", _guide("weightnorm", H=float("inf"), **SMALL)),
    Case("hierarchical-transitions", "hierarchical guide with T < 0 transitions", "ValueError",
         "num_transitions must be an integer >= 0 (T = 0 is the plain Gaussian guide), got -1",
         _guide("hierarchical", num_transitions=-1, **SMALL)),
    Case("consistency-unknown-transform", "an unknown consistency transform", "ValueError",
         "unknown transform 'blur'; use one of shift, affine, identity or a callable [B, D] -> [B, D]",
         _consistency_unknown_transform),
    Case("semi-amortized-bad-lr", "semi-amortized guide with a step size `lr <= 0`", "ValueError",
         "lr (the refinement step size) must be > 0, got 0.0; SA-VAE uses step sizes around 0.1-1 on (mu, log sigma)",
         _semi_amortized_bad_lr),
    Case("semi-amortized-without-log-joint", "semi-amortized guide with a model whose `log_joint` does not reproduce "
         "its `forward`", "TypeError",
         "SemiAmortized refines with the model's log_joint(x, z), which must reproduce its forward (docs/design.md, "
         "contract 6); EnergyModel does not offer one (a model that overrides forward must also override log_joint)",
         _semi_amortized_without_log_joint),
    Case("spectral-bad-bound", "spectral-norm bound ≤ 0", "ValueError",
         "bound (the largest singular value allowed per layer) must be > 0, got 0.0; pick a positive bound such as "
         "bound=2 (smaller = smoother encoder), or bound=None for plain linear layers", _spectral_bad_bound),
]
