"""Kernel choices by measurement (pyro_air.backend: choices, tanh, precision, openmp, report): the
faster kernel is chosen, the choice is cached per machine and can be overridden; flushing denormals changes no result beyond rounding."""
import json

import pyro
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.backend import choices, openmp, precision, tanh
from pyro_air.backend.report import kernel_report



def test_the_identity_is_chosen_only_when_it_clearly_wins():
    assert tanh.choose_tanh({"torch": 1.0, "sigmoid": 0.5}) == "sigmoid"
    assert tanh.choose_tanh({"torch": 1.0, "sigmoid": 0.95}) == "torch"  # within the margin: exact kernel
    assert tanh.choose_tanh({"torch": 0.3, "sigmoid": 1.0}) == "torch"


def test_the_measured_choice_is_cached_and_reused(fresh_choice, monkeypatch):
    calls = []
    monkeypatch.setattr(tanh, "measure_tanh", lambda: calls.append(1) or {"torch": 2.0, "sigmoid": 1.0})
    assert tanh.tanh_kernel() == "sigmoid"
    cache = json.loads((fresh_choice / "kernels.json").read_text())
    assert [entry["tanh"] for entry in cache.values()] == ["sigmoid"]
    tanh.set_tanh_kernel(None)  # a new process: reads the cache, does not measure again
    monkeypatch.setattr(tanh, "measure_tanh", lambda: pytest.fail("measured although cached"))
    assert tanh.tanh_kernel() == "sigmoid"
    assert kernel_report()["tanh"]["source"].startswith("cache")
    assert len(calls) == 1


def test_the_environment_overrides_the_measurement(fresh_choice, monkeypatch):
    monkeypatch.setattr(tanh, "measure_tanh", lambda: pytest.fail("measured although overridden"))
    monkeypatch.setenv(tanh.TANH_ENV, "torch")
    assert tanh.tanh_kernel() == "torch"
    tanh.set_tanh_kernel(None)
    monkeypatch.setenv(tanh.TANH_ENV, "fast")
    with pytest.raises(ValueError, match="PYRO_AIR_TANH='fast' is not a tanh kernel; use one of torch, sigmoid"):
        tanh.tanh_kernel()
    with pytest.raises(ValueError, match="unknown tanh kernel"):
        tanh.set_tanh_kernel("fast")


def test_an_unwritable_cache_only_means_measuring(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(choices.CACHE_ENV, str(blocker))  # a file where the directory should be
    monkeypatch.delenv(tanh.TANH_ENV, raising=False)
    monkeypatch.setattr(tanh, "measure_tanh", lambda: {"torch": 1.0, "sigmoid": 2.0})
    tanh.set_tanh_kernel(None)
    try:
        assert tanh.tanh_kernel() == "torch"
    finally:
        tanh.set_tanh_kernel(None)


def test_the_report_names_the_cpu_and_the_choice(fresh_choice, monkeypatch):
    monkeypatch.setattr(tanh, "measure_tanh", lambda: {"torch": 1.0, "sigmoid": 2.0})
    report = kernel_report()
    assert report["cpu"] and report["tanh"]["kernel"] == "torch" and report["tanh"]["source"] == "measured now"
    assert report["threads"] == torch.get_num_threads()


def test_the_bf16_verdict_is_measured_cached_and_kept_beside_the_tanh_choice(fresh_choice, monkeypatch):
    monkeypatch.setattr(tanh, "measure_tanh", lambda: {"torch": 2.0, "sigmoid": 1.0})
    monkeypatch.setattr(precision, "measure_bf16_gemm", lambda: {"float32": 2.0, "bf16": 1.0})
    assert tanh.tanh_kernel() == "sigmoid"
    assert precision.bf16_support()["state"] == "native"
    entry, = json.loads((fresh_choice / "kernels.json").read_text()).values()
    assert entry["tanh"] == "sigmoid" and entry["bf16"] == "native"  # neither overwrote the other
    choices.forget_choices()
    monkeypatch.setattr(precision, "measure_bf16_gemm", lambda: pytest.fail("measured although cached"))
    assert precision.bf16_support()["source"].startswith("cache")
    assert kernel_report()["bf16"]["state"] == "native"


def test_bf16_counts_as_native_only_when_clearly_faster(fresh_choice, monkeypatch):
    monkeypatch.setattr(precision, "measure_bf16_gemm", lambda: {"float32": 1.1, "bf16": 1.0})  # < 1.2x
    assert precision.bf16_support()["state"] == "emulated"
    with pytest.warns(RuntimeWarning, match="without native bf16 matrix products"):
        precision.check_precision("bf16", "cpu")
    choices.forget_choices()
    monkeypatch.setenv(precision.BF16_ENV, "native")  # the override wins over the cached verdict
    assert precision.bf16_support() == {"state": "native", "source": "$PYRO_AIR_BF16"}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.check_precision("bf16", "cpu")  # native: no warning
    choices.forget_choices()
    monkeypatch.setenv(precision.BF16_ENV, "fast")
    with pytest.raises(ValueError, match="PYRO_AIR_BF16='fast' is not a bf16 verdict; use one of native, emulated"):
        precision.bf16_support()


def test_flushing_denormals_changes_no_bound_or_gradient_beyond_rounding():
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", z_dim=4, hidden=(30,))
    guide = guides.build("gaussian", z_dim=4, hidden=(30,))
    x = torch.bernoulli(torch.full((6, 784), 0.2), generator=torch.Generator().manual_seed(1))
    params = list(model.parameters()) + list(guide.parameters())

    def iwae_and_gradient():
        pyro.set_rng_seed(3)
        loss = infer.IWAE_ELBO(num_particles=50).differentiable_loss(model, guide, x)
        return loss.detach(), torch.autograd.grad(loss, params)

    plain_loss, plain_grad = iwae_and_gradient()
    with openmp.denormals_flushed():
        with openmp.denormals_flushed():  # nested: the inner block does not end the outer one
            pass
        assert torch.tensor(1e-40) == 0  # flushed while inside
        flushed_loss, flushed_grad = iwae_and_gradient()
    assert torch.tensor(1e-40) != 0  # restored after
    torch.testing.assert_close(flushed_loss, plain_loss, rtol=1e-6, atol=0)
    for a, b in zip(flushed_grad, plain_grad, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# -- precision (issue 17) ----------------------------------------------------------------
def test_bf16_autocast_runs_matmuls_in_bf16_and_float32_is_untouched(monkeypatch):
    a = torch.randn(4, 8)
    with precision.autocast("bf16", "cpu"):
        assert (a @ a.T).dtype == torch.bfloat16
    with precision.autocast("float32", "cpu"):
        assert (a @ a.T).dtype == torch.float32
    monkeypatch.setattr(precision, "bf16_support", lambda: {"state": "emulated"})
    with pytest.warns(RuntimeWarning, match="without native bf16"):
        precision.check_precision("bf16", "cpu")
    monkeypatch.setattr(precision, "bf16_support", lambda: {"state": "native"})
    precision.check_precision("bf16", "cpu")  # no warning where bf16 is native (pytest's -W error would fail otherwise)


def test_processes_starting_together_measure_once_and_agree(tmp_path):
    """Two processes resolve a choice at the same moment: one measures, the other reads its answer."""
    import subprocess
    import sys
    code = ("import time, sys\n"
            "from pyro_air.backend import report, tanh\n"
            "def slow():\n"
            "    time.sleep(1.0)\n"
            "    return {'torch': float(sys.argv[1]), 'sigmoid': 1.0}\n"
            "tanh.measure_tanh = slow\n"
            "print(tanh.tanh_kernel(), report.kernel_report()['tanh']['source'])\n")
    env = {**__import__("os").environ, choices.CACHE_ENV: str(tmp_path)}
    env.pop(tanh.TANH_ENV, None)
    # the two would choose differently if each measured: 2.0 -> sigmoid, 0.5 -> torch
    procs = [subprocess.Popen([sys.executable, "-c", code, t], env=env, stdout=subprocess.PIPE, text=True)
             for t in ("2.0", "0.5")]
    answers = [p.communicate(timeout=120)[0].split()[0] for p in procs]
    assert answers[0] == answers[1]
    entry, = json.loads((tmp_path / "kernels.json").read_text()).values()
    assert entry["tanh"] == answers[0]


def test_a_record_names_the_cpu_with_its_vector_extensions(monkeypatch):
    from pyro_air.backend import choices

    monkeypatch.setattr(choices, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setattr(choices, "cpu_flags", lambda: ["avx2", "avx512f"])
    assert choices.cpu_label() == "AMD EPYC (avx2, avx512f)"
    monkeypatch.setattr(choices, "cpu_flags", lambda: [])
    assert choices.cpu_label() == "AMD EPYC"
