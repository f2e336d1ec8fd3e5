"""Data parallelism on CPU (gloo, 2 processes): training and evaluation match one process."""
import pytest
import torch
import torch.multiprocessing as mp

from pyro_air import infer
from pyro_air.support import parallel as distributed
from pyro_air.support.parallel import DistributedSetupError
from pyro_air.evaluate import log_likelihood
from pyro_air.train import TrainConfig, fit
from pyro_air.train.checkpoints import CheckpointError
from tests import distributed_worker as worker

WORLD = 2


def _spawn(fn, tmp_path):
    mp.spawn(fn, args=(WORLD, str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD)
    return [torch.load(tmp_path / f"{fn.__name__.split('_')[0]}_rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _single_thread(fn, *args, **kwargs):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _assert_close_states(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


def _assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _strip_seconds(history):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history]


def test_two_processes_train_like_one_process_resume_exactly_and_roll_back_together(tmp_path):
    ranks = _spawn(worker.train_worker, tmp_path)
    single_grads = _single_thread(worker.first_gradients, False)
    single = _single_thread(worker.train_run, False)
    for r, got in enumerate(ranks):
        # one backward pass: DDP's average of the ranks' (N / (B/W))-scaled gradients is the global-batch gradient
        # (Adam would hide a constant factor in the parameters, so the gradient is checked itself)
        _assert_close_states(got["gradients"], single_grads, atol=1e-5)
        assert max(g.abs().max() for g in single_grads.values()) > 0.1  # the comparison is not of zeros
        # 2 epochs x 5 steps with the deterministic point-mass guide: the single-process parameters
        _assert_close_states(got["point_mass"]["model"], single["model"], atol=1e-5)
        _assert_close_states(got["point_mass"]["guide"], single["guide"], atol=1e-5)
        for mine, theirs in zip(got["point_mass"]["history"], single["history"]):
            assert mine.keys() == theirs.keys()
            for key in ("train_loss", "valid_iwae3"):  # loss averaged over ranks; validation gathered
                assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
        # Gaussian guide, ranks started from different random parameters; crash at step 7, resumed from step 6
        for part in ("model", "guide"):
            _assert_equal_states(got["resumed"][part], got["uninterrupted"][part])
            _assert_equal_states(got["uninterrupted"][part], ranks[0]["uninterrupted"][part])  # ranks agree
        assert _strip_seconds(got["resumed"]["history"]) == _strip_seconds(got["uninterrupted"]["history"])
        # NaN on rank 1 only at step 4: every rank rolled back to the checkpoint of step 3, and the ranks stay equal
        assert [(e["step"], e["restored_step"]) for e in got["rollback"]["rollbacks"]] == [(4, 3)]
        for part in ("model", "guide"):
            _assert_equal_states(got["rollback"][part], ranks[0]["rollback"][part])
    # the training actually moved the parameters, and only rank 0 wrote metrics (one line per epoch)
    initial_model, _ = worker.build(point_mass=True)
    assert not torch.allclose(initial_model.state_dict()["decoder.0.weight"], single["model"]["decoder.0.weight"])
    for run in ("point_mass", "uninterrupted", "resumed"):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == worker.CONFIG["epochs"], run


def test_distributed_evaluation_gathers_the_single_process_values_in_order(tmp_path):
    ranks = _spawn(worker.eval_worker, tmp_path)
    single = _single_thread(worker.eval_run, False)
    assert single.shape == (23,)
    for got in ranks:  # uneven shards (12 and 11 points), every rank returns all 23 values in dataset order
        assert torch.equal(got, single)
    other_seed = _single_thread(worker.eval_run, False, seed=worker.EVAL["seed"] + 1)
    assert not torch.equal(other_seed, single)  # the values do depend on the random draws the seed fixes


def test_seeded_evaluation_leaves_the_callers_random_stream_alone():
    model, guide = worker.build(point_mass=False)
    x = worker.eval_data()
    torch.manual_seed(4)
    expected = torch.rand(3)
    torch.manual_seed(4)
    first = log_likelihood(model, guide, x, num_samples=3, seed=9)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(log_likelihood(model, guide, x, num_samples=3, seed=9), first)


def test_distributed_without_torchrun_environment_is_refused(monkeypatch):
    for name in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    model, guide = worker.build(point_mass=True)
    train_x, valid_x = worker.data()
    with pytest.raises(DistributedSetupError, match="MASTER_ADDR.*torchrun --standalone --nproc_per_node"):
        fit(model, guide, infer.build("elbo"), train_x, valid_x, TrainConfig(**worker.CONFIG), distributed=True)


def test_distributed_evaluation_outside_a_process_group_is_refused():
    model, guide = worker.build(point_mass=False)
    with pytest.raises(DistributedSetupError, match="distributed evaluation needs an initialized"):
        log_likelihood(model, guide, worker.eval_data(), num_samples=2, distributed=True)


def test_resume_with_another_number_of_processes_is_refused(tmp_path):
    config = dict(worker.CONFIG, epochs=1, progress=False)
    model, guide = worker.build(point_mass=True)
    train_x, valid_x = worker.data()
    fit(model, guide, infer.build("elbo"), train_x, valid_x, TrainConfig(**config), run_dir=tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2  # as a 2-process run writes it
    torch.save(state, tmp_path / "checkpoint.pt")
    model, guide = worker.build(point_mass=True)
    with pytest.raises(CheckpointError, match="written by a run of 2 processes and this run has 1"):
        fit(model, guide, infer.build("elbo"), train_x, valid_x, TrainConfig(**config), run_dir=tmp_path, resume=True)
