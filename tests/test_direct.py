"""pyro_air.train's fast path (one torch Adam over differentiable_loss, Pyro validation and the
per-call input checks off) gives the same numbers as the slow path, pyro.infer.SVI."""
import copy

import pyro
import pyro.optim
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.train import parameters_of
from tests.conftest import binary_batch


def _pair():
    torch.manual_seed(0)
    return models.build("bernoulli-vae", z_dim=3, hidden=(20,)), guides.build("gaussian", z_dim=3, hidden=(20,))


@pytest.mark.parametrize("objective", [infer.MonteCarloELBO(num_particles=2), infer.IWAE_ELBO(num_particles=5)])
def test_one_fast_step_equals_one_svi_step(objective):
    """Same init, batch and seed: identical loss, gradients and Adam-updated parameters."""
    x = binary_batch(10)
    model, guide = _pair()
    fast_model, fast_guide = copy.deepcopy(model), copy.deepcopy(guide)

    slow_grads = {}  # SVI zeroes .grad after its step: catch the gradients as backward makes them
    for i, p in enumerate(parameters_of(model, guide)):
        p.register_hook(lambda g, i=i: slow_grads.__setitem__(i, g.clone()))
    pyro.set_rng_seed(11)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), objective)
    slow_loss = svi.step(x, num_data=40)  # validation on (Pyro's default): inputs checked every call

    params = parameters_of(fast_model, fast_guide)
    optimizer = torch.optim.Adam(params, lr=1e-2)
    pyro.set_rng_seed(11)
    with pyro.validation_enabled(False):  # what train.fit's hot loop does
        optimizer.zero_grad(set_to_none=True)
        fast_loss = objective.differentiable_loss(fast_model, fast_guide, x, num_data=40)
        fast_loss.backward()
        fast_grads = [p.grad.clone() for p in params]
        optimizer.step()

    assert fast_loss.item() == slow_loss
    slow_params = parameters_of(model, guide)
    assert len(slow_grads) == len(fast_grads)
    assert all(torch.equal(fast_grads[i], slow_grads[i]) for i in range(len(fast_grads)))
    assert all(torch.equal(a, b) for a, b in zip(params, slow_params, strict=True))


def test_input_checks_follow_pyro_validation():
    """Validation on: a non-binary batch is refused per call; off (the hot loop): not checked."""
    model, guide = _pair()
    grey = torch.full((4, 784), 0.5)
    with pytest.raises(ValueError, match="binary x"):
        infer.MonteCarloELBO().loss(model, guide, grey)
    with pyro.validation_enabled(False):
        assert torch.isfinite(torch.tensor(infer.MonteCarloELBO().loss(model, guide, grey)))


@pytest.mark.parametrize("estimate", [log_likelihood, elbo])
def test_evaluation_checks_its_data_once_up_front(estimate):
    """Evaluation turns per-call checks off, so it checks all of x before the first chunk."""
    model, guide = _pair()
    x = binary_batch(6)
    x[5, 0] = 0.5
    with pytest.raises(ValueError, match="binary x in \\{0, 1\\}"):
        estimate(model, guide, x, num_samples=3, batch_size=2)
    with pytest.raises(ValueError, match="shape \\[B, 784\\]"):
        estimate(model, guide, torch.zeros(3, 10), num_samples=3)


def _traced_and_direct(model, guide, x, k, **kwargs):
    from pyro_air.infer.direct import direct_log_weights
    from pyro_air.infer.log_weights import log_importance_weights
    pyro.set_rng_seed(4)
    traced = log_importance_weights(model, guide, x, num_particles=k, **kwargs)
    pyro.set_rng_seed(4)
    direct = direct_log_weights(model, guide, x, k, kwargs.get("num_data"))
    return traced, direct


def test_direct_log_weights_are_bit_identical_to_the_traced_ones(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    for pair, data in (((model, exact_guide), x), (_pair(), binary_batch(6))):
        traced, direct = _traced_and_direct(*pair, data, 3, num_data=40)
        assert torch.equal(traced.log_w, direct.log_w) and traced.scale == direct.scale == 40 / len(data)


def test_the_direct_path_is_taken_only_where_nothing_can_observe_it():
    from pyro_air.infer.direct import can_compute_directly
    model, guide = _pair()
    assert can_compute_directly(model, guide)
    with pyro.poutine.scale(scale=0.5):  # an effect (KL warm-up, SVI's parameter capture, ...)
        assert not can_compute_directly(model, guide)

    class ExtraSite(type(model)):
        def forward(self, x, num_data=None):
            pyro.sample("w", pyro.distributions.Normal(0.0, 1.0))
            return super().forward(x, num_data)

    assert not can_compute_directly(ExtraSite(z_dim=3, hidden=(20,)), guide)

    class Forwarding:  # runs its own __call__ but forwards attributes (e.g. KL warm-up's tempering)
        def __init__(self, fn):
            self.fn = fn

        def __getattr__(self, name):
            return getattr(self.__dict__["fn"], name)

        def __call__(self, *args, **kwargs):
            return self.fn(*args, **kwargs)

    assert not can_compute_directly(Forwarding(model), guide)
    assert not can_compute_directly(model, Forwarding(guide))
    with pytest.raises(ValueError, match="num_data=2 is smaller than the batch"):
        infer.MonteCarloELBO().differentiable_loss(model, guide, binary_batch(4), num_data=2)


def test_evaluation_on_the_direct_path_equals_the_traced_one(monkeypatch):
    """log_likelihood takes the direct path; forcing the traced one gives the same numbers."""
    import importlib
    ll = importlib.import_module("pyro_air.evaluate.log_likelihood")  # the module, not the function
    model, guide = _pair()
    x = binary_batch(5)
    pyro.set_rng_seed(9)
    direct = log_likelihood(model, guide, x, num_samples=7, chunk_size=3, batch_size=2)
    monkeypatch.setattr(ll, "can_compute_directly", lambda *a: False)
    pyro.set_rng_seed(9)
    traced = log_likelihood(model, guide, x, num_samples=7, chunk_size=3, batch_size=2)
    assert torch.equal(direct, traced)


def test_objectives_that_need_more_than_log_weights_keep_the_traced_path():
    assert not infer.MonteCarloELBO().needs_traces() and not infer.IWAE_ELBO(num_particles=3).needs_traces()
    assert infer.IWAE_ELBO(num_particles=3, estimator="dreg").needs_traces()
    assert infer.IWAE_ELBO(num_particles=3, estimator="stl").needs_traces()
    assert infer.build("cubo", num_particles=3).needs_traces()


@pytest.mark.parametrize("name", ["gaussian", "gaussian-large", "weightnorm", "iaf", "denoising"])
def test_direct_path_is_bit_identical_for_every_standard_guide(name):
    """Log weights and their gradients, traced vs direct, for each registered guide that implements
    direct scoring (the hierarchical guide does not: traced path)."""
    model = models.build("bernoulli-vae", z_dim=3, hidden=(20,))
    guide = guides.build(name, z_dim=3, hidden=(20,), **({"sigma": 0.2} if name == "denoising" else {}))
    traced, direct = _traced_and_direct(model, guide, binary_batch(6), 3, num_data=40)
    assert torch.equal(traced.log_w, direct.log_w)
    params = parameters_of(model, guide)
    grads = []
    for weights in (traced, direct):
        grad = torch.autograd.grad(weights.log_w.sum(), params, allow_unused=True)
        grads.append(grad)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(*grads))


def test_guides_that_override_forward_without_direct_scoring_take_the_traced_path():
    from pyro_air.infer.direct import can_compute_directly
    model = models.build("bernoulli-vae", z_dim=3, hidden=(20,))
    assert not can_compute_directly(model, guides.build("hierarchical", x_dim=784, z_dim=3, num_transitions=1))

    class OwnForward(guides.GaussianEncoder):  # overrides forward, not direct_posterior
        def forward(self, x, num_data=None):
            return super().forward(x.flip(0), num_data)

    assert not can_compute_directly(model, OwnForward(z_dim=3, hidden=(20,)))


def test_the_denoising_guide_takes_the_direct_path_bit_identically():
    """Denoising implements direct scoring (noise drawn where forward draws it), in training mode
    with noise and partial denoising too: the same log weights and gradients as the traced path."""
    from pyro_air.infer.direct import can_compute_directly
    model = models.build("bernoulli-vae", z_dim=3, hidden=(20,))
    guide = guides.build("denoising", z_dim=3, hidden=(20,), sigma=0.3, alpha=0.5)
    assert can_compute_directly(model, guide)
    traced, direct = _traced_and_direct(model, guide, binary_batch(6), 3, num_data=40)
    assert torch.equal(traced.log_w, direct.log_w)
    params = parameters_of(model, guide)
    grads = [torch.autograd.grad(w.log_w.sum(), params) for w in (traced, direct)]
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


# -- the specialized formulas (BernoulliVAE.log_joint, GaussianEncoder.direct_posterior) --------------

@pytest.mark.parametrize("name", ["gaussian", "gaussian-large", "weightnorm"])
def test_specialized_formulas_are_bit_identical_to_the_distribution_path(name):
    from pyro_air.core.scoring import DiagonalNormalPosterior, generic_scoring
    from pyro_air.infer.direct import direct_log_weights

    model = models.build("bernoulli-vae", z_dim=3, hidden=(20,))
    guide = guides.build(name, z_dim=3, hidden=(20,))
    x, params = binary_batch(6), parameters_of(model, guide)
    assert isinstance(guide.direct_posterior(x), DiagonalNormalPosterior)
    results = []
    for specialized in (True, False):
        pyro.set_rng_seed(4)
        if specialized:
            log_w = direct_log_weights(model, guide, x, 5, 40).log_w
        else:
            with generic_scoring():
                assert not isinstance(guide.direct_posterior(x), DiagonalNormalPosterior)
                log_w = direct_log_weights(model, guide, x, 5, 40).log_w
        results.append((log_w, torch.autograd.grad(torch.logsumexp(log_w, 0).sum(), params)))
    (fast_w, fast_g), (generic_w, generic_g) = results
    assert torch.equal(fast_w, generic_w)
    assert all(torch.equal(a, b) for a, b in zip(fast_g, generic_g, strict=True))


def test_specialized_evaluation_equals_the_distribution_path():
    from pyro_air.core.scoring import generic_scoring

    model, guide = _pair()
    x = binary_batch(5)
    pyro.set_rng_seed(9)
    fast = log_likelihood(model, guide, x, num_samples=7, chunk_size=3, batch_size=2)
    pyro.set_rng_seed(9)
    with generic_scoring():
        generic = log_likelihood(model, guide, x, num_samples=7, chunk_size=3, batch_size=2)
    assert torch.equal(fast, generic)


def test_a_subclass_that_changes_the_likelihood_or_posterior_leaves_the_specialized_formula():
    """The formula is written for BernoulliVAE.likelihood and GaussianEncoder.posterior; a subclass
    that overrides them gets the generic direct path, so its numbers stay the traced ones."""
    from pyro_air.core.scoring import DiagonalNormalPosterior
    from pyro_air.models.bernoulli_vae import BernoulliVAE

    class SharperLikelihood(BernoulliVAE):
        def likelihood(self, z):
            return super().likelihood(2 * z)

    class ShiftedPosterior(guides.GaussianEncoder):
        def posterior(self, x):
            loc, scale = self.loc_scale(x)
            return pyro.distributions.Normal(loc + 1.0, scale).to_event(1)

    x = binary_batch(6)
    for model, guide in ((SharperLikelihood(z_dim=3, hidden=(20,)), guides.build("gaussian", z_dim=3, hidden=(20,))),
                         (models.build("bernoulli-vae", z_dim=3, hidden=(20,)), ShiftedPosterior(z_dim=3, hidden=(20,)))):
        traced, direct = _traced_and_direct(model, guide, x, 3, num_data=40)
        assert torch.equal(traced.log_w, direct.log_w)
    assert not isinstance(ShiftedPosterior(z_dim=3, hidden=(20,)).direct_posterior(x), DiagonalNormalPosterior)
    assert not isinstance(guides.build("iaf", z_dim=3, hidden=(20,)).direct_posterior(x), DiagonalNormalPosterior)
    denoising = guides.build("denoising", z_dim=3, hidden=(20,), sigma=0.1)
    assert isinstance(denoising.direct_posterior(x), DiagonalNormalPosterior)  # the wrapped encoder's formula
