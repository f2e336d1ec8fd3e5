"""pyro_air.core.allocator: freed memory kept for reuse (glibc), the override, and no number changed.

The malloc thresholds are process-wide and permanent, so every check that sets them runs in a
fresh Python process."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_air import guides, models
from pyro_air.core import allocator
from pyro_air.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process: apply (per PYRO_AIR_MALLOC), count the minor page faults of 20 rounds of
# three 4 MiB tensors written and freed together, and score 8 images with a small untrained VAE.
CHILD = r"""
import json, resource, torch
from pyro_air import guides, models
from pyro_air.core.allocator import keep_freed_memory
from pyro_air.evaluate import log_likelihood
report = keep_freed_memory()
def churn():  # three 4 MiB tensors alive together, then freed, as in an evaluation chunk
    alive = [torch.empty(1 << 20).fill_(1.0) for _ in range(3)]
    del alive
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
torch.manual_seed(0)
model = models.build("bernoulli-vae", x_dim=30, z_dim=3, hidden=(16,))
guide = guides.build("gaussian", x_dim=30, z_dim=3, hidden=(16,))
x = (torch.rand(8, 30) < 0.4).float()
torch.manual_seed(1)
ll = log_likelihood(model, guide, x, num_samples=300, chunk_size=70).tolist()
print(json.dumps({"report": report, "faults": faults, "ll": ll}))
"""


def run_child(mode):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYRO_AIR_MALLOC": mode}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def children():
    return {mode: run_child(mode) for mode in ("keep", "system")}


def test_system_mode_leaves_the_c_library_alone(children):
    assert children["system"]["report"]["applied"] is False
    assert "PYRO_AIR_MALLOC=system" in children["system"]["report"]["reason"]


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's; elsewhere nothing is changed")
def test_keep_mode_reuses_freed_memory(children):
    report = children["keep"]["report"]
    assert report["applied"] is True and "32 MiB" in report["reason"] and "128 MiB" in report["reason"]
    # 60 fresh 4 MiB tensors are ~61,000 first-touch faults when each comes from the kernel, as
    # with glibc's defaults (its trim threshold, twice the largest freed mapped block, is below the
    # 12 MiB freed together); kept memory is reused
    assert children["system"]["faults"] > 30000  # (if this fails, glibc changed and the tuning may be moot)
    assert children["keep"]["faults"] < 3000  # at most the first touch of a block or two


def test_numbers_do_not_depend_on_the_allocator(children):
    assert children["keep"]["ll"] == children["system"]["ll"]  # bit for bit


def test_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PYRO_AIR_MALLOC", "fast")
    with pytest.raises(ValueError, match="PYRO_AIR_MALLOC='fast'.*'keep'.*'system'"):
        allocator.malloc_mode()


def test_fit_checks_the_setting_before_claiming_the_run_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(allocator, "_state", {})  # as in a process where nothing applied it yet
    monkeypatch.setenv("PYRO_AIR_MALLOC", "fast")
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=2, hidden=(8,))
    from pyro_air import infer
    x = (torch.rand(40, 20) < 0.5).float()
    with pytest.raises(ValueError, match="PYRO_AIR_MALLOC"):
        fit(model, guide, infer.MonteCarloELBO(), x, None, TrainConfig(epochs=1, batch_size=20, progress=False),
            run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_report_before_and_after(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    assert allocator.allocator_report()["applied"] is False
    monkeypatch.setenv("PYRO_AIR_MALLOC", "system")  # so this test process's malloc is left alone
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() == first == allocator.allocator_report()
