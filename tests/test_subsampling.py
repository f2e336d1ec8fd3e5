"""Subsampling edge cases of the log-weight primitive.

The identity objective(num_data=N) = N/B x batch sum of bounds, and loss() == loss_and_grads(), are
tested for every objective in tests/test_objectives.py."""
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide


def test_num_data_smaller_than_batch_is_an_error(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="num_data"):
        infer.build("elbo").loss(model, ExactPosteriorGuide(model), x, num_data=3)


def test_exact_guide_makes_every_weight_log_px(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    lw = infer.log_importance_weights(model, exact_guide, x, num_particles=3, num_data=160)
    assert lw.log_w.shape == (3, len(x)) and lw.scale == 10.0
    assert torch.allclose(lw.log_w, model.exact_log_likelihood(x).expand(3, -1), atol=1e-4)
