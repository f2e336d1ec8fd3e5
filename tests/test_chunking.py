"""Evaluation chunks (pyro_air.evaluate.chunking, pyro_air.backend.onednn.chunk_elements): samples are
drawn in fixed units and scored several units at once; how many moves the estimates at float
rounding only, follows the dense-layer library, and can be overridden or pinned."""
import importlib
import subprocess
import sys

import pytest
import torch

from pyro_air import guides, models
from pyro_air.backend import choices, onednn, tanh
from pyro_air.backend.report import chosen_kernels, kernel_report, pinned_kernels
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.evaluate.chunking import default_chunk_size, units_per_chunk
from pyro_air.infer.direct import direct_log_weight_chunks

from tests.conftest import binary_batch


def _pair(seed=0):
    torch.manual_seed(seed)
    size = {"z_dim": 4, "hidden": (32, 32)}
    return models.build("bernoulli-vae", **size).eval(), guides.build("gaussian", **size).eval()


def test_scoring_units_together_keeps_the_draws():
    """The same draws whether each unit is scored alone or several together: the log weights agree
    to float rounding (other draws would differ by whole nats), the first unit bit for bit in log q."""
    model, guide = _pair()
    x = binary_batch(3)
    with torch.no_grad():
        torch.manual_seed(5)
        alone = torch.cat(list(direct_log_weight_chunks(model, guide, x, 23, 4)))
        torch.manual_seed(5)
        together = list(direct_log_weight_chunks(model, guide, x, 23, 4, units=3))
    assert [c.shape[0] for c in together] == [12, 11]  # units of 4, 4, 4 | 4, 4, 3
    together = torch.cat(together)
    assert alone.shape == together.shape == (23, 3)
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("estimate", [log_likelihood, elbo])
def test_the_scored_chunk_moves_estimates_at_float_rounding_only(estimate):
    model, guide = _pair()
    x = binary_batch(6)
    unit = default_chunk_size(2000, 6, 784)
    assert unit < 2000  # several units: the choice matters here
    out = {}
    for elements in onednn.CHUNK_ELEMENTS:
        with pinned_kernels({"chunk_elements": elements}):
            out[elements] = estimate(model, guide, x, num_samples=2000, seed=3)
    reference = out[onednn.CHUNK_ELEMENTS[0]]
    explicit = estimate(model, guide, x, num_samples=2000, chunk_size=unit, seed=3)
    assert torch.equal(explicit, reference)  # 2**20 elements: one unit per chunk, as before
    for elements, value in out.items():
        torch.testing.assert_close(value, reference, rtol=1e-6, atol=1e-5)


def test_units_per_chunk_fills_the_chosen_elements_and_asks_nothing_for_one_unit(monkeypatch):
    with pinned_kernels({"chunk_elements": 2 ** 22}):
        assert units_per_chunk(133, 5000, 10, 784) == 4  # 4 * 133 * 10 * 784 <= 2**22 < 5 * ...
        assert units_per_chunk(1, 5000, 100, 50000) == 1  # a unit larger than the chunk: still one
    assert units_per_chunk(7, 7, 10, 784, "cuda") == 1
    monkeypatch.setattr(onednn, "chunk_choice", lambda: pytest.fail("asked although one unit holds all"))
    chunking = importlib.import_module("pyro_air.evaluate.chunking")
    monkeypatch.setattr(chunking, "chunk_elements", lambda device=None: pytest.fail("asked"))
    assert units_per_chunk(50, 50, 10, 784) == 1


def test_the_chunk_follows_the_dense_layer_library(fresh_choice):
    with pinned_kernels({"linear": "onednn"}):
        assert onednn.chunk_elements() == onednn.ONEDNN_CHUNK_ELEMENTS == 2 ** 22
        assert "onednn" in onednn.chunk_choice()["source"]
    with pinned_kernels({"linear": "torch"}):
        assert onednn.chunk_elements() == 2 ** 20
    assert onednn.chunk_elements("cuda") == onednn.OFF_CPU_CHUNK_ELEMENTS
    with pinned_kernels({"linear": "torch"}):
        report = kernel_report()
        assert report["chunk_elements"]["elements"] == 2 ** 20
        assert chosen_kernels()["chunk_elements"] == 2 ** 20


def test_the_environment_and_pins_override_the_rule(fresh_choice, monkeypatch):
    monkeypatch.setenv(onednn.CHUNK_ENV, str(2 ** 21))
    with pinned_kernels({"linear": "onednn"}):
        assert onednn.chunk_elements() == 2 ** 21
        assert onednn.chunk_choice()["source"] == "$PYRO_AIR_CHUNK_ELEMENTS"
        with pinned_kernels({"chunk_elements": 2 ** 23}):
            assert onednn.chunk_elements() == 2 ** 23
        assert onednn.chunk_elements() == 2 ** 21
    monkeypatch.setenv(onednn.CHUNK_ENV, "lots")
    with pytest.raises(ValueError, match="PYRO_AIR_CHUNK_ELEMENTS='lots' is not a chunk size in elements; "
                                         "use one of 1048576, 2097152, 4194304, 8388608"):
        onednn.chunk_elements()
    with pytest.raises(ValueError, match="unknown kernel"):
        with pinned_kernels({"chunk_elements": 1000}):
            pass


def test_a_measurement_that_needs_another_choice_does_not_wait_for_itself(tmp_path):
    """On an empty cache the linear kernel's measurement runs the tanh kernel, whose choice takes the
    cache lock this process already holds: it must go on, not wait for itself (it once did)."""
    env = {**__import__("os").environ, choices.CACHE_ENV: str(tmp_path)}
    for name in (tanh.TANH_ENV, onednn.LINEAR_ENV, onednn.CHUNK_ENV):
        env.pop(name, None)
    code = ("from pyro_air.backend import onednn, tanh\n"
            "tanh.measure_tanh = lambda: {'torch': 1.0, 'sigmoid': 2.0}\n"
            "print(onednn.linear_kernel(), tanh.tanh_kernel())\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    linear, tanh_name = out.stdout.split()
    assert linear in onednn.LINEAR_KERNELS and tanh_name == "torch"
