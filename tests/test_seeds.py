"""Seeds (pyro_air/core/seeds.py): one base seed, one independent stream per component of a run."""
import random

import numpy as np
import pytest
import torch

from pyro_air.core.seeds import STREAMS, derive_seed, seed_all, seeded, stream_seed


def test_derived_seeds_do_not_collide_on_trailing_zeros():
    # NumPy's SeedSequence pads with zeros: without the key count in the hash these two were equal
    assert derive_seed(5, 1) != derive_seed(5, 1, 0)
    assert derive_seed(5) != derive_seed(5, 0)
    assert len({stream_seed(0, name) for name in ("model_init", "guide_init", "objective_init")}) == 3


def test_derived_seeds_are_fixed_32_bit_numbers_that_any_generator_takes():
    seeds = [derive_seed(s, *keys) for s in range(5) for keys in [(), (1,), (1, 2), (2, 1)]]
    assert seeds == [derive_seed(s, *keys) for s in range(5) for keys in [(), (1,), (1, 2), (2, 1)]]
    assert len(set(seeds)) == len(seeds)  # key order matters, and no two of these collide
    assert all(isinstance(s, int) and 0 <= s < 2 ** 32 for s in seeds)
    for s in seeds[:3]:
        torch.Generator().manual_seed(s), np.random.default_rng(s), random.Random(s)


def test_a_negative_seed_or_key_is_refused():
    with pytest.raises(ValueError, match=r"seeds and keys must be non-negative integers, got \[3, -1\]"):
        derive_seed(3, -1)


def test_a_stream_is_its_numbered_key_and_the_streams_stay_clear_of_batch_keys():
    assert stream_seed(7, "data_order", 3) == derive_seed(7, STREAMS["data_order"], 3)
    assert len(set(STREAMS.values())) == len(STREAMS) and min(STREAMS.values()) >= 1000
    named = {stream_seed(7, name) for name in STREAMS}
    assert len(named | {derive_seed(7, k) for k in range(100)}) == len(STREAMS) + 100


def test_an_unknown_stream_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown random stream 'training_order'; known streams are: model_init, "):
        stream_seed(0, "training_order")


def test_seed_all_seeds_torch_numpy_and_python():
    seed_all(11)
    first = (torch.rand(2), np.random.rand(2), random.random())
    seed_all(11)
    second = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_seeded_draws_the_seeds_numbers_inside_and_restores_the_callers_stream_after():
    torch.manual_seed(1)
    expected_after = torch.rand(3)
    torch.manual_seed(1)
    with seeded(5):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_after)
    torch.manual_seed(5)
    assert torch.equal(inside, torch.rand(3))


def test_seeded_none_uses_and_advances_the_callers_stream():
    torch.manual_seed(2)
    expected = torch.rand(6)
    torch.manual_seed(2)
    with seeded(None):
        first = torch.rand(3)
    assert torch.equal(torch.cat([first, torch.rand(3)]), expected)
