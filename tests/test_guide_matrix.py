"""Every registered guide with every registered model whose latent shape fits, under ELBO, IWAE and InfoVAE:
one ``pyro.infer.SVI`` step, a finite loss and a non-zero, finite gradient for the guide (docs/design.md,
contract 1). Guides and models registered later join automatically. Each model needs a small test
config below (a registered name without one fails with a message saying so); a guide runs with its
entry in GUIDE_TEST_CONFIGS if it has one, else with its defaults made small where it declares
``hidden`` (``hidden=[8]``), so a new guide whose defaults work needs no entry."""
import copy

import pyro
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.core.validation import check_compatible
from tests.conftest import binary_batch

X_DIM, Z_DIM = 12, 3

# model name -> (small config, data for one step); guides are built with the model's x_dim, z_dim
MODEL_TEST_CONFIGS = {
    "bernoulli-vae": (dict(x_dim=X_DIM, z_dim=Z_DIM, hidden=[8]), lambda: binary_batch(n=6, d=X_DIM)),
    "linear-gaussian": (dict(x_dim=X_DIM, z_dim=Z_DIM), lambda: torch.randn(6, X_DIM)),
    "gaussian-mlp-vae": (dict(x_dim=X_DIM, z_dim=Z_DIM, hidden=[8, 8, 8]), lambda: torch.randn(6, X_DIM)),
    # grey levels in [0, 1]
    "continuous-bernoulli-vae": ({"x_dim": X_DIM, "z_dim": Z_DIM, "hidden": [8]}, lambda: torch.rand(6, X_DIM)),
    # convolutional decoders over 3 x 4 images
    "conv-bernoulli-vae": ({"x_dim": X_DIM, "z_dim": Z_DIM, "channels": [4], "hidden": 8},
                           lambda: binary_batch(n=6, d=X_DIM)),
    "conv-continuous-bernoulli-vae": ({"x_dim": X_DIM, "z_dim": Z_DIM, "channels": [4, 4], "hidden": 8},
                                      lambda: torch.rand(6, X_DIM)),
    # real values, 3 channels of 2 x 2 images
    "conv-gaussian-vae": ({"x_dim": X_DIM, "z_dim": Z_DIM, "image_shape": [3, 2, 2], "channels": [4], "hidden": 8},
                          lambda: torch.randn(6, X_DIM)),
    # a 2-D unnormalized target: x is a dummy [B, 1] input, the latent z is 2-D
    "energy": (dict(energy="u1"), lambda: torch.zeros(6, 1)),
    # AVO section 5.1: a 1-D latent on a circle in 2-D data space, with a learned decoder
    "biased-noise": (dict(x_dim=2, z_dim=1, learn=("eta", "scale"), hidden=[8]), lambda: torch.randn(6, 2)),
    # a 3 x 4 binary image, two gated layers of 4 channels
    "pixelcnn-vae": ({"x_dim": X_DIM, "z_dim": Z_DIM, "channels": 4, "num_layers": 2, "kernel_size": 3},
                     lambda: binary_batch(n=6, d=X_DIM)),
}

# guide name -> small config (x_dim and z_dim are added); a guide not listed: guide_config below
GUIDE_TEST_CONFIGS = {
    "gaussian": dict(hidden=[8]),
    "gaussian-large": dict(hidden=[8]),
    "weightnorm": dict(hidden=[8], H=2.0),
    "denoising": dict(sigma=0.3, alpha=0.5, encoder="gaussian", hidden=[8]),
    "hierarchical": dict(num_transitions=2, hidden=[8], transition_hidden=8),
    "iaf": dict(hidden=[8], num_flows=1, flow_hidden=[8]),
    "consistency": {"encoder": "gaussian", "hidden": [8], "transform": "identity"},
    "semi-amortized": {"encoder": "gaussian", "hidden": [8], "num_steps": 2, "lr": 0.1},
    "spectral-norm": {"hidden": [8], "bound": 2.0},
    "denoising-weightnorm": {"hidden": [8], "sigma": 0.3, "H": 2.0},
    "conv-gaussian": {"channels": [4], "hidden": 8},
}

# Compatibility rule: a guide listed here needs a latent of at least this size (an autoregressive
# flow has nothing to condition on in 1-D), so it is paired only with models whose z_dim reaches
# it; test_guides_refuse_too_small_latents checks that such a guide refuses the smaller z_dim.
GUIDE_MIN_Z_DIM = {"iaf": 2}

OBJECTIVES = {"elbo": dict(num_particles=2), "iwae": dict(num_particles=4),
              "infovae": dict(lam=10.0, num_particles=2)}


def guide_config(name):
    """The guide's small test config: its entry in GUIDE_TEST_CONFIGS, else its defaults with one small
    hidden layer where it declares that it takes ``hidden`` (``GUIDES.declares``)."""
    if name in GUIDE_TEST_CONFIGS:
        return GUIDE_TEST_CONFIGS[name]
    return {"hidden": [8]} if guides.GUIDES.declared(name)["hidden"] else {}


def _config(table, name, kind):
    if name not in table:
        pytest.fail(f"{kind} {name!r} is registered but has no small test config; add one to "
                    f"{'GUIDE' if kind == 'guide' else 'MODEL'}_TEST_CONFIGS in tests/test_guide_matrix.py")
    return table[name]


def _model_z_dim(model_name):
    if model_name not in MODEL_TEST_CONFIGS:
        return None  # the test itself fails with the message asking for a config
    return models.build(model_name, **MODEL_TEST_CONFIGS[model_name][0]).z_dim


# Compatibility rule: guides listed here refine q with the model's log_joint(x, z) (semi-amortized
# inference), so they pair only with models whose log_joint reproduces their forward
# (supports_direct_scoring); test_guides_refuse_models_without_log_joint checks the refusal.
GUIDE_NEEDS_LOG_JOINT = {"semi-amortized"}


def _model_scores_directly(model_name):
    if model_name not in MODEL_TEST_CONFIGS:
        return True
    return models.build(model_name, **MODEL_TEST_CONFIGS[model_name][0]).supports_direct_scoring()


def _compatible_pairs():
    pairs = []
    for model_name in models.MODELS.names():
        z_dim = _model_z_dim(model_name)
        for guide_name in guides.GUIDES.names():
            if guide_name in GUIDE_NEEDS_LOG_JOINT and not _model_scores_directly(model_name):
                continue
            if z_dim is None or z_dim >= GUIDE_MIN_Z_DIM.get(guide_name, 1):
                pairs.append((guide_name, model_name))
    return pairs


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("guide_name,model_name", _compatible_pairs())
def test_one_svi_step_for_every_guide_model_objective(guide_name, model_name, objective):
    model_cfg, make_x = _config(MODEL_TEST_CONFIGS, model_name, "model")
    guide_cfg = guide_config(guide_name)
    model = models.build(model_name, **model_cfg)
    guide = guides.build(guide_name, x_dim=model.x_dim, z_dim=model.z_dim, **guide_cfg)
    check_compatible(model, guide)
    x = make_x()
    elbo = infer.build(objective, **OBJECTIVES[objective])
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), elbo)
    loss = svi.step(x, num_data=60)
    assert torch.isfinite(torch.tensor(loss))

    params = [p for p in guide.parameters()]
    assert params, f"guide {guide_name!r} has no parameters to learn"
    for p in params:
        p.grad = None
    elbo.loss_and_grads(model, guide, x, num_data=60)
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_every_listed_guide_config_is_of_a_registered_guide():
    stale = sorted(set(GUIDE_TEST_CONFIGS) - set(guides.GUIDES.names()))
    assert not stale, f"GUIDE_TEST_CONFIGS lists guides that are not registered: {stale}"


@pytest.mark.parametrize("guide_name", sorted(GUIDE_MIN_Z_DIM))
def test_guides_refuse_too_small_latents(guide_name):
    """The pairs the compatibility rule leaves out fail loudly when built, naming z_dim."""
    cfg = dict(guide_config(guide_name))
    with pytest.raises(ValueError, match="z_dim"):
        guides.build(guide_name, x_dim=2, z_dim=GUIDE_MIN_Z_DIM[guide_name] - 1, **cfg)


@pytest.mark.parametrize("guide_name,model_name", _compatible_pairs())
def test_every_pair_that_claims_direct_scoring_gets_the_traced_numbers(guide_name, model_name):
    """docs/design.md, contract 6: wherever the untraced fast path is taken, its log weights are the
    traced primitive's bit for bit (training mode, so guides that draw their own noise are covered)."""
    from pyro_air.infer.direct import can_compute_directly, direct_log_weights

    model_cfg, make_x = _config(MODEL_TEST_CONFIGS, model_name, "model")
    model = models.build(model_name, **model_cfg)
    guide = guides.build(guide_name, x_dim=model.x_dim, z_dim=model.z_dim, **guide_config(guide_name))
    if not can_compute_directly(model, guide):  # traced (the SVI test above runs it): say why
        assert not (model.supports_direct_scoring() and guide.supports_direct_scoring())
        return
    x = make_x()
    # copies: a module may update state as it runs (spectral normalization's power iteration)
    direct_model, direct_guide = copy.deepcopy(model), copy.deepcopy(guide)
    pyro.set_rng_seed(3)
    traced = infer.log_importance_weights(model, guide, x, num_particles=3, num_data=60)
    pyro.set_rng_seed(3)
    direct = direct_log_weights(direct_model, direct_guide, x, 3, 60)
    assert torch.equal(traced.log_w, direct.log_w) and traced.scale == direct.scale


@pytest.mark.parametrize("guide_name", sorted(GUIDE_NEEDS_LOG_JOINT))
def test_guides_refuse_models_without_log_joint(guide_name):
    """The pairs the log_joint rule leaves out fail loudly, naming log_joint."""
    for model_name, (model_cfg, make_x) in MODEL_TEST_CONFIGS.items():
        model = models.build(model_name, **model_cfg)
        if model.supports_direct_scoring():
            continue
        guide = guides.build(guide_name, x_dim=model.x_dim, z_dim=model.z_dim, **guide_config(guide_name))
        with pytest.raises(TypeError, match="log_joint"):
            infer.build("elbo").loss(model, guide, make_x())
