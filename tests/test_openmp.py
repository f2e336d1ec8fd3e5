"""Denormal flushing reaches every thread of torch's OpenMP pool (pyro_air.backend.openmp): torch's own
switch reaches only the calling thread, so a 2-thread kernel flushed half its work."""
import threading

import pytest
import torch

from pyro_air.backend import openmp
from pyro_air.backend.openmp import denormal_flush_reach, denormals_flushed, flush_denormals_supported
from pyro_air.backend.report import kernel_report

needs_libgomp = pytest.mark.skipif(openmp.pool_runtime() is None or not flush_denormals_supported(),
                                   reason="torch's OpenMP runtime is not libgomp, or no flush-to-zero here")
DENORMAL = 3e-39  # below float32's smallest normal, 1.18e-38


def _denormals(n=1_000_000) -> torch.Tensor:
    """Made once, unflushed: converting the fill value on a flushing thread would already give 0."""
    openmp.set_flush_denormal_everywhere(False)
    x = torch.full((n,), DENORMAL)
    return x


DENORMALS = _denormals()


def nonzero_after_multiply() -> float:
    """Fraction of denormal inputs that survive x * 1.0 on the current team (0 where all flushed)."""
    return (DENORMALS * 1.0 != 0).float().mean().item()


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    nonzero_after_multiply()  # the pool's second thread exists (unflushed) before any test switches modes
    yield
    openmp.set_flush_denormal_everywhere(False)
    torch.set_num_threads(before)


@needs_libgomp
def test_torch_switch_alone_reaches_only_the_calling_thread(two_threads):
    """The reason for the module: half of a 2-thread kernel keeps its denormals."""
    torch.set_flush_denormal(True)
    try:
        assert nonzero_after_multiply() == pytest.approx(0.5, abs=0.05)
    finally:
        torch.set_flush_denormal(False)


@needs_libgomp
def test_flush_everywhere_reaches_every_pool_thread_and_back(two_threads):
    assert openmp.set_flush_denormal_everywhere(True) is True
    assert nonzero_after_multiply() == 0.0
    torch.set_num_threads(1)
    torch.set_num_threads(2)  # a resized team reuses the same (flushed) pool threads
    assert nonzero_after_multiply() == 0.0
    openmp.set_flush_denormal_everywhere(False)
    assert nonzero_after_multiply() == 1.0


@needs_libgomp
def test_denormals_flushed_context_flushes_every_thread_and_restores(two_threads):
    assert denormal_flush_reach() == "every pool thread" == kernel_report()["denormal_flush_reach"]
    with denormals_flushed():
        with denormals_flushed():  # nested: the inner exit must not end the outer block
            pass
        assert nonzero_after_multiply() == 0.0
    assert nonzero_after_multiply() == 1.0
    with denormals_flushed(False):
        assert nonzero_after_multiply() == 1.0


@needs_libgomp
def test_on_every_thread_runs_once_per_thread_and_raises_what_a_thread_raised():
    seen = []
    assert openmp.on_every_thread(lambda: seen.append(threading.get_ident()), 3) is True
    assert len(seen) == 3 and len(set(seen)) == 3 and threading.get_ident() in seen

    def boom():
        raise RuntimeError("from a pool thread")

    with pytest.raises(RuntimeError, match="from a pool thread"):
        openmp.on_every_thread(boom, 2)


def test_without_libgomp_only_the_calling_thread_runs(monkeypatch):
    monkeypatch.setattr(openmp, "_runtime", [None])
    seen = []
    assert openmp.on_every_thread(lambda: seen.append(threading.get_ident()), 4) is False
    assert seen == [threading.get_ident()]
    assert denormal_flush_reach() == "calling thread only"


@needs_libgomp
def test_a_team_grown_inside_the_flush_is_restored_on_exit(two_threads):
    """Threads created for a larger team inherit the flushed mode; leaving the block must reach them
    too, or they would stay flushed for whoever uses that team size later."""
    with denormals_flushed():
        torch.set_num_threads(4)
        assert nonzero_after_multiply() == 0.0
    assert nonzero_after_multiply() == 1.0  # still 4 threads here: every one of them unflushed
