"""Data parallelism (pyro_air/core/parallel.py): sharding, set-up refusals, and the collectives in a
one-process gloo group. Training and evaluation across two processes: tests/test_distributed.py."""
import pytest
import torch
import torch.distributed as dist

from pyro_air.support import parallel
from pyro_air.support.parallel import DistributedSetupError
from pyro_air.core.seeds import stream_seed


# -- sharding -----------------------------------------------------------------------------------

def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a = parallel.epoch_order(50, seed=1, epoch=0)
    assert torch.equal(torch.sort(a).values, torch.arange(50))
    assert torch.equal(a, parallel.epoch_order(50, seed=1, epoch=0))
    assert not torch.equal(a, parallel.epoch_order(50, seed=1, epoch=1))
    assert not torch.equal(a, parallel.epoch_order(50, seed=2, epoch=0))


def test_epoch_order_comes_from_the_data_order_stream_and_leaves_the_global_stream_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    order = parallel.epoch_order(20, seed=3, epoch=4)
    assert torch.equal(torch.rand(3), expected_next)
    gen = torch.Generator().manual_seed(stream_seed(3, "data_order", 4))
    assert torch.equal(order, torch.randperm(20, generator=gen))


def test_local_slices_tile_the_global_batch_and_shards_tile_the_list():
    slices = [parallel.local_batch_slice(12, r, 3) for r in range(3)]
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 12)]
    items = list(range(7))
    shards = [parallel.shard(items, r, 3) for r in range(3)]
    assert sum(shards, []) == items and sorted(map(len, shards)) == [2, 2, 3]


@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
def test_shards_are_contiguous_in_order_and_differ_in_size_by_at_most_one(world):
    for n in range(0, 23):
        items = list(range(n))
        shards = [parallel.shard(items, r, world) for r in range(world)]
        assert sum(shards, []) == items
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_the_ranks_local_slices_of_an_epoch_are_the_single_process_batches():
    """At every step the W ranks together hold exactly the single-process global batch (module docstring)."""
    order, batch, world = parallel.epoch_order(24, seed=0, epoch=0), 8, 4
    for start in range(0, 24, batch):
        global_batch = order[start:start + batch]
        local = [global_batch[parallel.local_batch_slice(batch, r, world)] for r in range(world)]
        assert torch.equal(torch.cat(local), global_batch)


def test_batch_size_not_divisible_by_the_world_size_is_refused():
    with pytest.raises(ValueError) as err:
        parallel.local_batch_slice(10, 0, 4)
    assert str(err.value) == ("batch_size=10 is not divisible by the number of processes (4); every rank takes "
                              "batch_size / world_size points of each global batch - use a multiple of 4 (e.g. 8) "
                              "or change --nproc_per_node")


# -- outside a process group --------------------------------------------------------------------

def test_a_single_process_is_rank_0_of_1_and_shutdown_does_nothing():
    assert not parallel.is_initialized()
    assert (parallel.rank(), parallel.world_size(), parallel.is_main_process()) == (0, 1, True)
    assert parallel.collective_device() == torch.device("cpu")
    parallel.shutdown()  # nothing to leave
    assert not parallel.is_initialized()


def test_what_needs_a_group_says_so_outside_one():
    with pytest.raises(DistributedSetupError, match=r"^gathering needs an initialized torch.distributed process "
                                                    r"group; call pyro_air.support.parallel.setup\(device\)"):
        parallel.require_initialized("gathering")


def test_setup_without_the_torchrun_environment_names_what_is_missing(monkeypatch):
    for name in parallel.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DistributedSetupError) as err:
        parallel.setup("cpu")
    assert str(err.value).startswith("--distributed needs the environment variables torchrun sets (WORLD_SIZE, "
                                      "LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing); launch every process with "
                                      "torchrun")
    assert not parallel.is_initialized()


def test_setup_refuses_devices_it_cannot_use(monkeypatch):
    with pytest.raises(DistributedSetupError, match=r"support device 'cpu' \(gloo\) or 'cuda' \(NCCL\), got 'meta'"):
        parallel.setup("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DistributedSetupError, match=r"device='cuda' was asked for but CUDA is not available"):
        parallel.setup("cuda")


# -- the collectives, in a group of one ---------------------------------------------------------

@pytest.fixture
def group_of_one(tmp_path, monkeypatch):
    """A one-process gloo group set up as torchrun describes it (a file store: no port is opened)."""
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        parallel.shutdown()
    assert not dist.is_initialized()


def test_collectives_of_one_rank_return_its_own_values(group_of_one):
    assert parallel.is_initialized() and parallel.world_size() == 1
    assert parallel.setup("cpu") == torch.device("cpu")  # already joined: joins nothing more
    assert parallel.all_true(True) and not parallel.all_true(False)
    t = torch.tensor([1.5, -2.0], dtype=torch.float32)
    mean = parallel.mean_across(t)
    assert torch.equal(mean, t) and mean.dtype == torch.float32 and mean is not t
    assert parallel.first_bad_across(None) is None
    assert parallel.first_bad_across((7, float("nan")))[0] == 7
    assert parallel.gather_objects({"state": 3}) == [{"state": 3}]
    values = torch.arange(5.0)
    assert torch.equal(parallel.gather_in_order(values), values)
    assert parallel.gather_in_order(torch.zeros(0)).shape == (0,)


@pytest.mark.parametrize("synchronize", [True, False])
def test_shutdown_leaves_the_group_with_or_without_the_barrier(tmp_path, synchronize):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    parallel.shutdown(synchronize=synchronize)
    assert not parallel.is_initialized() and parallel.world_size() == 1
