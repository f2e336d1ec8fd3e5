"""pyro_air.backend.allocator: freed memory kept for reuse (glibc), the override, and no number changed.

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
from pyro_air.backend import allocator
from pyro_air.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process: apply (per PYRO_AIR_MALLOC); write three 24 MiB tensors, free them together
# and see how much of the resident memory goes back to the kernel (what would page-fault when the
# next chunk or step allocates again); score 8 images with a small untrained VAE.
# Why 24 MiB: glibc's own thresholds adapt to what the process freed before (at most a 32 MiB mmap
# threshold and twice that as trim threshold), so 72 MiB freed at once is returned to the kernel
# under the defaults whatever the process did earlier, while 128 MiB of kept heap holds it.
# (Resident memory, not page-fault counts: transparent huge pages make fault counts vary.)
CHILD = r"""
import json, os, torch
from pyro_air import guides, models
from pyro_air.backend.allocator import keep_freed_memory
from pyro_air.evaluate import log_likelihood
report = keep_freed_memory()
def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
returned = []
for _ in range(3):
    alive = [torch.empty(6 << 20).fill_(1.0) for _ in range(3)]
    before = resident_mib()
    del alive
    returned.append(before - resident_mib())
torch.manual_seed(0)
model = models.build("bernoulli-vae", x_dim=30, z_dim=3, hidden=(16,))
guide = guides.build("gaussian", x_dim=30, z_dim=3, hidden=(16,))
x = (torch.rand(8, 30) < 0.4).float()
torch.manual_seed(1)
ll = log_likelihood(model, guide, x, num_samples=300, chunk_size=70).tolist()
print(json.dumps({"report": report, "returned_mib": returned, "ll": ll}))
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
    # the C library hands the 72 MiB back (the first time at least: later rounds depend on what else
    # sits on the heap), so the next round faults it in again; kept, it never leaves the process
    assert max(children["system"]["returned_mib"]) > 40  # (if this fails, glibc changed: the tuning may be moot)
    assert max(children["keep"]["returned_mib"]) < 8


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


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.setenv("PYRO_AIR_MALLOC", "keep")
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)  # as on macOS, Windows or musl
    report = allocator.keep_freed_memory()
    assert report["applied"] is False and "not glibc" in report["reason"]
