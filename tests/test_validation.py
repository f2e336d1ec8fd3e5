"""Input checks (pyro_air/core/validation.py): each says what was wrong and what to do, in one line."""
import os

import pyro
import pytest
import torch

from pyro_air.core import validation
from pyro_air.core.validation import (
    check_batch,
    check_binary,
    check_compatible,
    check_grey_levels,
    check_hidden,
    check_positive,
    check_positive_int,
    check_unit_interval,
    input_checks_enabled,
    one_line,
    physical_memory,
)


def _message(fn, *args, error=ValueError):
    with pytest.raises(error) as err:
        fn(*args)
    return str(err.value)


@pytest.mark.parametrize("x,error,message", [
    ([[0.0] * 4], TypeError, "Model expects x as a torch.Tensor of shape [B, 4], got list"),
    (torch.zeros(2, 4, dtype=torch.long), TypeError,
     "Model expects a floating-point x (float32), got dtype torch.int64; convert with x.float()"),
    (torch.zeros(2, 2, 2), ValueError,
     "Model expects x of shape [B, 4], got [2, 2, 2]; flatten images to [B, 4] (e.g. x.reshape(len(x), -1))"),
    (torch.zeros(2, 5), ValueError,
     "Model expects x of shape [B, 4], got [2, 5]; flatten images to [B, 4] (e.g. x.reshape(len(x), -1))"),
    (torch.zeros(0, 4), ValueError, "Model got an empty batch (B = 0); pass at least one datapoint"),
    (torch.tensor([[0.0, float("nan"), 0.0, 0.0]]), ValueError,
     "Model got NaN or inf in x; clean the data (e.g. torch.nan_to_num) first"),
    (torch.tensor([[0.0, 0.0, -float("inf"), 0.0]]), ValueError,
     "Model got NaN or inf in x; clean the data (e.g. torch.nan_to_num) first"),
])
def test_a_bad_batch_is_one_clear_error(x, error, message):
    assert _message(check_batch, x, 4, "Model", error=error) == message


def test_a_good_batch_passes_in_any_floating_dtype():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        check_batch(torch.ones(3, 4, dtype=dtype), 4, "Model")


def test_the_likelihoods_support_checks():
    assert _message(check_binary, torch.tensor([[0.0, 0.5, 1.0]]), "BernoulliVAE") == (
        "BernoulliVAE has a Bernoulli likelihood and needs binary x in {0, 1}, but x has values in [0, 1]; binarize "
        "first (pyro_air.data.binarize, or torch.bernoulli(x) for dynamic binarization)")
    check_binary(torch.tensor([[0.0, 1.0, -0.0]]), "BernoulliVAE")
    check_binary(torch.zeros(0, 3), "BernoulliVAE")  # nothing to check
    assert _message(check_grey_levels, torch.tensor([[0.0, 255.0]]), "CB").startswith(
        "CB has a continuous-Bernoulli likelihood and needs grey levels x in [0, 1], but x has values in [0, 255]")
    check_grey_levels(torch.tensor([[0.0, 0.25, 1.0]]), "CB")


def test_whole_dataset_checks_find_one_bad_value_anywhere():
    """The one-pass finite check and the piecewise binary check see a single bad entry in any piece,
    including the last, partial one."""
    x = torch.zeros(3 * validation.CHECK_CHUNK_ELEMENTS // 784 + 5, 784)
    x[::7] = 1.0
    assert validation.all_finite(x) and validation.all_binary(x)
    for bad in (float("nan"), float("inf"), -float("inf"), 0.5, 1e-30, 1 - 2 ** -24, -0.0 + 2.0, -1e-30):
        for index in (0, validation.CHECK_CHUNK_ELEMENTS + 3, x.numel() - 1):
            y = x.clone().view(-1)
            y[index] = bad
            finite = bad == bad and abs(bad) != float("inf")
            assert validation.all_finite(y) is finite
            assert validation.all_binary(y) is False
    assert validation.all_binary(torch.tensor([0.0, -0.0, 1.0]))


@pytest.mark.parametrize("value,minimum,message", [
    (0, 1, "k must be an integer >= 1, got 0"),
    (-3, 0, "k must be an integer >= 0, got -3"),
    (2.0, 1, "k must be an integer >= 1, got 2.0"),
    (True, 1, "k must be an integer >= 1, got True"),
    ("4", 1, "k must be an integer >= 1, got '4'"),
])
def test_positive_integers(value, minimum, message):
    assert _message(check_positive_int, value, "k", minimum) == message


def test_positive_numbers_are_returned_as_floats():
    assert check_positive_int(3, "k") == 3 and check_positive_int(0, "k", minimum=0) == 0
    assert check_positive(2, "lr") == 2.0 and isinstance(check_positive(2, "lr"), float)
    assert check_positive(0, "sigma", allow_zero=True) == 0.0
    assert check_unit_interval(1, "alpha") == 1.0 and check_unit_interval(0.0, "alpha") == 0.0


@pytest.mark.parametrize("value,allow_zero,message", [
    (0.0, False, "lr must be > 0, got 0.0"),
    (-1e-3, True, "lr must be >= 0, got -0.001"),
    (float("nan"), False, "lr must be > 0, got nan"),
    (float("nan"), True, "lr must be >= 0, got nan"),
    ("fast", False, "lr must be a number, got 'fast'"),
    (None, False, "lr must be a number, got None"),
])
def test_positive_number_refusals(value, allow_zero, message):
    assert _message(check_positive, value, "lr", allow_zero) == message


def test_unit_interval_and_hidden_sizes():
    assert _message(check_unit_interval, 1.5, "alpha") == "alpha must lie in [0, 1], got 1.5"
    assert check_hidden([500, 500]) == (500, 500) and check_hidden(()) == ()
    assert _message(check_hidden, (8, 0)) == "every entry of hidden must be an integer >= 1, got 0"


def test_a_guide_that_does_not_fit_the_model_names_both_sizes():
    class Sizes:
        def __init__(self, x_dim, z_dim):
            self.x_dim, self.z_dim = x_dim, z_dim

    check_compatible(Sizes(784, 4), Sizes(784, 4))
    assert _message(check_compatible, Sizes(784, 8), Sizes(784, 4)) == (
        "guide Sizes (x_dim=784, z_dim=4) does not fit model Sizes (x_dim=784, z_dim=8); build the guide with the "
        "model's x_dim and z_dim")
    assert "(x_dim=?, z_dim=?)" in _message(check_compatible, Sizes(784, 8), object())


def test_one_line_joins_lines_and_cuts_long_text():
    assert one_line(ValueError("first line\n  second\tline\n")) == "first line second line"
    long = one_line("word " * 100, limit=20)
    assert len(long) == 20 and long.endswith("...")
    assert one_line("x" * 20, limit=20) == "x" * 20


def test_physical_memory_is_a_size_or_none_where_the_system_does_not_say(monkeypatch):
    size = physical_memory()
    assert size is None or size > 2 ** 20

    def unknown(name):
        raise ValueError(name)
    monkeypatch.setattr(os, "sysconf", unknown)
    assert physical_memory() is None


def test_input_checks_follow_pyros_validation_switch():
    assert input_checks_enabled()
    with pyro.validation_enabled(False):
        assert not input_checks_enabled()
    assert input_checks_enabled()
