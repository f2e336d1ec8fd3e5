"""The benchmarks' reference implementations compute what they claim (no timings asserted)."""
import math
from pathlib import Path

import pyro
import pytest
import torch

from benchmarks import evaluation as ev
from benchmarks.handwritten import HandwrittenVAE
from benchmarks.memory import main as memory_main
from benchmarks.timing import interleave, ratio_rows
from benchmarks.training import training_cases
from pyro_air import guides, infer, models
from pyro_air.evaluate import log_likelihood
from tests.conftest import binary_batch


def _pair():
    torch.manual_seed(0)
    return (models.build("bernoulli-vae", z_dim=4, hidden=(24, 16)),
            guides.build("gaussian", z_dim=4, hidden=(24, 16)))


@pytest.mark.parametrize("objective,bound,k", [(infer.MonteCarloELBO(), "elbo", 1), (infer.IWAE_ELBO(num_particles=8), "iwae", 8)])
def test_handwritten_loss_and_gradients_equal_pyro_air(objective, bound, k):
    """Same weights, batch, seed and N/B scaling: the hand-written loss is pyro-air's loss."""
    model, guide = _pair()
    net = HandwrittenVAE.from_pyro_air(model, guide)
    x = binary_batch(12)
    pyro.set_rng_seed(7)
    ours = objective.differentiable_loss(model, guide, x, num_data=600)
    ours.backward()
    pyro.set_rng_seed(7)
    theirs = net.loss(x, num_particles=k, num_data=600, bound=bound)
    theirs.backward()
    assert ours.item() == theirs.item()
    # parameter order: model.decoder, guide.features, guide.head vs net.features, net.head, net.decoder
    ours_grads = {"decoder": [p.grad for p in model.decoder.parameters()],
                  "encoder": [p.grad for p in (*guide.features.parameters(), *guide.head.parameters())]}
    theirs_grads = {"decoder": [p.grad for p in net.decoder.parameters()],
                    "encoder": [p.grad for p in (*net.features.parameters(), *net.head.parameters())]}
    for part in ours_grads:
        for a, b in zip(ours_grads[part], theirs_grads[part], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)


def test_handwritten_rejects_unknown_bound():
    model, guide = _pair()
    with pytest.raises(ValueError, match="bound must be 'elbo' or 'iwae'"):
        HandwrittenVAE.from_pyro_air(model, guide).loss(binary_batch(2), bound="cubo")


def test_every_training_case_steps_and_the_first_pyro_air_step_equals_the_handwritten_one():
    """All benchmark cases start from the same weights; under one seed the pyro-air and the
    hand-written first steps give the same loss (the stock Pyro losses are the same ELBO)."""
    batches = [binary_batch(100, seed=s) for s in range(2)]
    with pyro.validation_enabled(False):
        cases = training_cases(1, batches, num_data=1000, z_dim=4, hidden=(24, 16))
        losses = {}
        for name, step in cases.items():
            pyro.set_rng_seed(3)
            losses[name] = float(step())
    assert losses["pyro-air ELBO"] == losses["hand-written ELBO"]
    # Trace_ELBO scores the same sites, summed in another order: equal up to float32 rounding
    assert losses["Pyro SVI Trace_ELBO"] == pytest.approx(losses["pyro-air ELBO"], rel=1e-5)


def test_decoder_flop_count_is_twice_the_multiply_adds():
    model = models.build("bernoulli-vae")  # 50-500-500-784
    assert ev.decoder_flops_per_sample(model) == 2 * (50 * 500 + 500 * 500 + 500 * 784) == 1_334_000


def test_peer_loop_estimates_the_same_log_likelihood():
    """The per-datapoint peer and pyro-air's chunked IWAE-S estimate the same log p(x): their
    difference is within a few Monte Carlo standard errors (from the peer's own weights)."""
    model, guide = _pair()
    x = binary_batch(3)
    peer = ev.PerDatapointPeer(model, guide, x, block=3, num_samples=2000)
    torch.manual_seed(1)
    theirs = torch.tensor(peer())
    torch.manual_seed(2)
    ours = log_likelihood(model, guide, x, num_samples=2000)
    with torch.no_grad():
        log_w = peer.net.log_weights(x, 2000)  # [S, B]: spread of the importance weights
    w = torch.softmax(log_w, 0)  # normalized weights
    s = log_w.shape[0]
    se = ((s * w.pow(2).sum(0) - 1).clamp_min(0) / s).sqrt()  # delta method: sd(mean w) / mean w
    assert torch.all((ours - theirs).abs() < 5 * math.sqrt(2) * se + 1e-3)


def test_decoder_gemms_count_the_flops_of_the_chunks():
    model = models.build("bernoulli-vae", z_dim=3, hidden=(5,))
    g = ev.DecoderGemms(model, block=2, num_samples=7, device="cpu")
    assert g.num_chunks * g.chunk >= 7 and g.flops == g.num_chunks * g.rows * 2 * (3 * 5 + 5 * 784)
    assert g().shape == (g.rows, 784)


def test_interleave_runs_round_robin_and_ratios_are_relative_to_the_baseline():
    order = []
    cases = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = interleave(cases, rounds=3, warmup_blocks=1)
    assert "".join(order) == "abc" + "abc" + "bca" + "cab"  # warm-up, then rotating rounds
    rows = {row[0]: (row[2], row[3]) for row in ratio_rows(times, "b")}
    assert rows["b"] == (1.0, 1.0) and len(times["a"].seconds) == 3


def test_memory_probe_prints_one_json_line(capsys):
    memory_main(["--num-samples", "3", "--images", "2", "--threads", "1"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"num_samples": 3' in line and '"added_mib"' in line


def _counting_case(start):
    """A factory for a worker process: a case that counts its calls (module level, so it pickles)."""
    calls = [start]

    def case():
        calls[0] += 1
        sum(range(20000))  # a little CPU time
    return case


def _failing_factory():
    raise ValueError("no data here")


def test_remote_case_runs_in_its_own_process_and_reports_its_cpu_time():
    from benchmarks.remote import RemoteCase
    case = RemoteCase(_counting_case, 0, threads=1, env={"PYRO_AIR_MALLOC": "system"})
    try:
        assert case.process.pid != __import__("os").getpid()
        times = interleave({"remote": case, "local": lambda: sum(range(20000))}, rounds=2)
        assert len(times["remote"].seconds) == 2 and case.cpu_clock() > 0
        assert all(c >= 0 for c in times["remote"].cpu_seconds)
    finally:
        case.close()
    assert not case.process.is_alive()
    with pytest.raises(RuntimeError, match="benchmark worker failed: ValueError: no data here"):
        RemoteCase(_failing_factory, threads=1)


def test_epoch_gemms_run_the_products_of_every_dense_layer():
    from benchmarks.training import EpochGemms
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=2, hidden=(6,))
    guide = guides.build("gaussian", x_dim=12, z_dim=2, hidden=(6,))
    gemms = EpochGemms(model, guide, num_particles=3, num_steps=2, batch=4)
    # encoder 12-6, head 6-4 on the batch (no input gradient for the first); decoder 2-6-12 on K x batch
    assert gemms.layers == [(4, 12, 6, False), (4, 6, 4, True), (12, 2, 6, True), (12, 6, 12, True)]
    gemms()


def test_resume_benchmark_cases_run_and_leave_no_file(tmp_path, linear_gaussian):
    from benchmarks import resume as resume_benchmark
    from pyro_air.evaluate import elbo
    from pyro_air.evaluate import resume as resume_module
    from pyro_air.guides import ExactPosteriorGuide

    model, x = linear_gaussian
    interval = resume_module.SAVE_EVERY_SECONDS
    cases = resume_benchmark.cases(elbo, model, ExactPosteriorGuide(model), x, 5, tmp_path)
    assert list(cases) == ["plain", "resume_file", "resume_file, a write per batch"]
    for run in cases.values():
        run()
    assert list(tmp_path.iterdir()) == [] and resume_module.SAVE_EVERY_SECONDS == interval


@pytest.mark.parametrize("layers,objective", [(8, "ELBO"), (4, "MMD")])
def test_the_pixelcnn_compile_benchmark_times_the_infovae_workers_networks(tmp_path, layers, objective):
    """benchmarks/pixelcnn_compiled.py measures the step the InfoVAE worker trains: its spec is the worker's
    (model, guide, objective at full scale) for the deep and the first decoder."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "infovae"))
    import pixelcnn_table

    from benchmarks.pixelcnn_compiled import spec
    method = {"ELBO": "elbo", "MMD": "mmd"}[objective]
    worker = pixelcnn_table.PixelCNNTableWorker(tmp_path)
    task = pixelcnn_table.train_task(method, 0, deep=layers == 8, compiled=True)
    want = worker.spec(task)
    got = spec(layers, objective)
    assert {k: got[k] for k in ("model", "guide", "objective")} == {k: want[k] for k in ("model", "guide", "objective")}
