"""MMD kernels and estimators (InfoVAE's divergence): closed forms, symmetry, bias, monotonicity."""
import math

import pytest
import torch

from pyro_air.infer.mmd import default_bandwidth, kernel_matrix, mmd


def double_loop_mmd(x, y, kernel, h, unbiased):
    def k(a, b):
        d2 = float(((a - b) ** 2).sum())
        return math.exp(-d2 / h) if kernel == "rbf" else h / (h + d2)

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    nxx, nyy = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    return sxx / nxx + syy / nyy - 2 * sxy / (n * m)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("bandwidth", [None, 0.7])
def test_mmd_matches_a_double_loop(kernel, unbiased, bandwidth):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=gen), torch.randn(5, 3, generator=gen) + 0.5
    h = default_bandwidth(kernel, 3) if bandwidth is None else bandwidth
    expected = double_loop_mmd(x.double(), y.double(), kernel, h, unbiased)
    assert mmd(x, y, kernel, bandwidth, unbiased).item() == pytest.approx(expected, abs=1e-6)


def test_default_rbf_kernel_is_the_authors_exp_of_mean_squared_difference_over_dim():
    x, y = torch.randn(4, 5), torch.randn(7, 5)
    authors = torch.exp(-((x[:, None] - y[None]) ** 2).mean(-1) / 5)
    assert torch.allclose(kernel_matrix(x, y, "rbf"), authors, atol=1e-7)
    assert default_bandwidth("imq", 5) == 10.0


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_is_symmetric(kernel, unbiased):
    x, y = torch.randn(9, 2), torch.randn(4, 2) * 2
    forward, backward = mmd(x, y, kernel, unbiased=unbiased).item(), mmd(y, x, kernel, unbiased=unbiased).item()
    assert forward == pytest.approx(backward, rel=1e-5)  # float32 sums in another order


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_unbiased_mmd_is_zero_in_expectation_for_identical_distributions(kernel):
    torch.manual_seed(0)
    reps, n, d = 400, 10, 2
    x, y = torch.randn(reps, n, d), torch.randn(reps, n, d)
    u = mmd(x, y, kernel, bandwidth=1.0, unbiased=True)
    v = mmd(x, y, kernel, bandwidth=1.0, unbiased=False)
    se = u.std() / math.sqrt(reps)
    assert abs(u.mean()) < 4 * se
    # the V-statistic is biased upwards by about (2 - E k(x, x') - E k(y, y')) / n: far from 0
    assert v.mean() > 10 * v.std() / math.sqrt(reps)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_is_positive_and_grows_with_a_mean_shift(kernel):
    torch.manual_seed(1)
    x, y = torch.randn(300, 2), torch.randn(300, 2)
    values = [mmd(x + shift, y, kernel, unbiased=True).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values[0] > 0
    assert all(a < b for a, b in zip(values, values[1:]))


def test_batched_and_chunked_mmd_equal_separate_full_computations():
    x, y = torch.randn(3, 11, 2), torch.randn(3, 8, 2) + 1
    batched = mmd(x, y, "imq", unbiased=True)
    separate = torch.stack([mmd(x[k], y[k], "imq", unbiased=True) for k in range(3)])
    chunked = mmd(x, y, "imq", unbiased=True, chunk_size=4)
    assert torch.allclose(batched, separate, atol=1e-6) and torch.allclose(batched, chunked, atol=1e-6)


def test_mmd_errors_say_what_to_do():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="unknown kernel 'laplace'"):
        mmd(x, x, "laplace")
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        mmd(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd(x[:1], x, unbiased=True)
    with pytest.raises(ValueError, match="same dimension"):
        mmd(x, torch.randn(5, 3))
