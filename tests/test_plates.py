"""The shared data plate (pyro_air/core/plates.py): the batch is the subsample, scaled by N / B."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_air import infer
from pyro_air.core.plates import DATA_PLATE, data_plate, data_size
from pyro_air.guides import ExactPosteriorGuide


def _program(x, num_data=None):
    with data_plate(x, num_data) as idx:
        pyro.sample("x", dist.Normal(0.0, 1.0).expand([len(x), x.shape[1]]).to_event(1), obs=x)
    return idx


def test_the_plate_is_the_batch_at_dim_minus_one_scaled_by_n_over_b():
    x = torch.randn(4, 3)
    trace = poutine.trace(_program).get_trace(x, 40)
    site = trace.nodes["x"]
    frame = site["cond_indep_stack"][0]
    assert (frame.name, frame.dim, frame.size, frame.full_size) == (DATA_PLATE, -1, 4, 40)
    assert site["scale"] == 10.0
    trace.compute_log_prob()
    assert torch.allclose(trace.log_prob_sum(), 10.0 * dist.Normal(0.0, 1.0).log_prob(x).sum())


def test_the_subsample_is_the_batch_itself_and_draws_no_random_indices():
    x = torch.randn(5, 2)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    idx = _program(x, num_data=1000)
    assert torch.equal(torch.rand(3), expected)  # no random subsample indices were drawn
    assert idx is x


def test_without_num_data_the_plate_is_the_batch_unscaled():
    x = torch.randn(6, 2)
    site = poutine.trace(_program).get_trace(x).nodes["x"]
    assert site["cond_indep_stack"][0].size == 6 and site["scale"] == 1.0


def test_data_size_is_num_data_or_the_batch_size():
    x = torch.zeros(8, 3)
    assert data_size(x) == 8
    assert data_size(x, 8) == 8 and data_size(x, 60000) == 60000


@pytest.mark.parametrize("num_data,message", [
    (3, "num_data=3 is smaller than the batch (8); pass the dataset size"),
    (0, "num_data must be an integer >= 1, got 0"),
    (2.5, "num_data must be an integer >= 1, got 2.5"),
    (True, "num_data must be an integer >= 1, got True"),
])
def test_a_bad_num_data_is_one_clear_error(num_data, message):
    with pytest.raises(ValueError) as err:
        data_size(torch.zeros(8, 3), num_data)
    assert str(err.value) == message


def test_num_data_smaller_than_batch_is_an_error_through_an_objective(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match=r"num_data=3 is smaller than the batch \(16\)"):
        infer.build("elbo").loss(model, ExactPosteriorGuide(model), x, num_data=3)
