"""Thread counts (pyro_air.backend.threads): a deterministic default from the environment and the
machine, checked overrides, and a setting restored after its block."""
import pytest
import torch

from pyro_air.backend import threads


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


def busy(monkeypatch, load: float, cpus: int = 2):
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
    monkeypatch.setattr(threads, "physical_cores", lambda: cpus)


def test_a_busy_machine_is_one_whose_load_plus_our_threads_oversubscribes_it(monkeypatch):
    busy(monkeypatch, 0.2)
    assert threads.busy_load(2) is None           # idle 2 CPUs, 2 threads: fine
    busy(monkeypatch, 1.4)
    assert threads.busy_load(2) == 1.4            # one busy process beside 2 threads on 2 CPUs
    assert threads.busy_load(1) is None           # 1.4 + 1 <= 2.5: one thread still fits


def test_on_a_busy_machine_waiting_threads_sleep_before_torch_loads(monkeypatch):
    """Only the OpenMP wait policy (same numbers), only before torch is imported, never over the user's."""
    monkeypatch.delenv(threads.WAIT_POLICY_ENV, raising=False)
    busy(monkeypatch, 3.0)
    assert threads.sleep_waiting_threads_if_busy(2) is False  # torch is loaded in this process: too late
    monkeypatch.delitem(threads.sys.modules, "torch")
    assert threads.sleep_waiting_threads_if_busy(1) is False  # one thread never waits
    assert threads.sleep_waiting_threads_if_busy(2) is True and threads.os.environ[threads.WAIT_POLICY_ENV] == "PASSIVE"
    monkeypatch.setenv(threads.WAIT_POLICY_ENV, "ACTIVE")
    assert threads.sleep_waiting_threads_if_busy(2) is False and threads.os.environ[threads.WAIT_POLICY_ENV] == "ACTIVE"
    busy(monkeypatch, 0.1)
    monkeypatch.delenv(threads.WAIT_POLICY_ENV)
    assert threads.sleep_waiting_threads_if_busy(2) is False  # idle: spinning is faster


def test_the_thread_report_says_what_was_chosen_and_why(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    busy(monkeypatch, 0.1)
    assert threads.thread_report(2, None) == "pyro-air: 2 threads (the default: min(physical cores 2, available CPUs 2))"
    assert threads.thread_report(1, 1) == "pyro-air: 1 thread (--threads)"
    busy(monkeypatch, 3.5)
    monkeypatch.setenv(threads.WAIT_POLICY_ENV, "PASSIVE")
    line = threads.thread_report(2, None)
    assert "; 1-minute load 3.5 on 2 CPUs: busy, so waiting threads sleep ($OMP_WAIT_POLICY=PASSIVE, same numbers); " \
           "--threads 1 is faster on a busy machine" in line
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    assert threads.thread_report(2, None).startswith("pyro-air: 2 threads ($OMP_NUM_THREADS); 1-minute load 3.5")
