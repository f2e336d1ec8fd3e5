"""Thread counts (pyro_air.core.threads): a deterministic default from the environment and the
machine, checked overrides, and a setting restored after its block."""
import pytest
import torch

from pyro_air.core import threads


def test_default_threads_honours_omp_num_threads_else_cores_and_available_cpus(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.default_threads() == 3
    monkeypatch.delenv(threads.THREADS_ENV)
    monkeypatch.setattr(threads, "physical_cores", lambda: 8)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)  # e.g. taskset or a container's limit
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "available_cpus", lambda: 16)
    assert threads.default_threads() == 8


def test_resolve_threads_checks_and_warns_of_oversubscription(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert threads.resolve_threads(2) == 2
    with pytest.warns(RuntimeWarning, match="more than the 2 CPUs"):
        assert threads.resolve_threads(4) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an integer >= 1"):
            threads.resolve_threads(bad)


def test_num_threads_sets_and_restores():
    before = torch.get_num_threads()
    with threads.num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads.num_threads(None):
        assert torch.get_num_threads() == before
