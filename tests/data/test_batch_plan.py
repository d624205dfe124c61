"""The global sample order: position-addressable, world-size independent, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from mammodino.data.batch_plan import (
    BatchPlan,
    dbt_per_batch,
    dbt_slots,
    mask_assignment,
)
from mammodino.errors import ConfigError, UserError
from mammodino.train.loader import StepBatches

FFDM = list(range(0, 37))
DBT = list(range(37, 47))


def plan(batch_size=16, **kw) -> BatchPlan:
    kw.setdefault("seed", 3)
    return BatchPlan.from_indices(FFDM, DBT, batch_size, **kw)


def batches(p: BatchPlan, steps: int, start_step=0, rank=0, world_size=1, grad_accum=1) -> StepBatches:
    """The training loader's batch stream over ``p``."""
    return StepBatches(p.batch_keys, p.batch_size, start_step, steps, rank, world_size, grad_accum)


def test_world_size_2_concatenates_to_world_size_1():
    p = plan()
    for step in (0, 1, 7, 250):
        whole = p.batch_keys(step)
        halves = [list(batches(p, step + 1, step, r, 2))[0] for r in range(2)]
        quarters = [list(batches(p, step + 1, step, r, 4))[0] for r in range(4)]
        assert halves[0] + halves[1] == whole
        assert sum(quarters, []) == whole


def test_sampler_iterates_rank_slices_and_micro_batches():
    p = plan()
    one = list(batches(p, 3))
    two = [list(batches(p, 3, rank=r, world_size=2, grad_accum=2)) for r in range(2)]
    assert len(one) == 3 and len(two[0]) == 6 and all(len(b) == 4 for b in two[0])
    for step in range(3):
        rebuilt = two[0][2 * step] + two[0][2 * step + 1] + two[1][2 * step] + two[1][2 * step + 1]
        assert rebuilt == one[step]


def test_resume_equals_continuation():
    p = plan()
    full = list(batches(p, 12))
    resumed = list(batches(plan(), 12, start_step=5))
    assert resumed == full[5:]
    # Resumed on another world size: the same global order.
    two = list(batches(plan(), 12, start_step=5, rank=1, world_size=2))
    assert two == [keys[8:] for keys in full[5:]]


def test_positions_and_epochs():
    p = plan()
    keys = [k for s in range(20) for k in p.batch_keys(s)]
    assert [k.position for k in keys] == list(range(20 * 16))
    ffdm = [k.index for k in keys if not k.is_dbt]
    dbt = [k.index for k in keys if k.is_dbt]
    assert set(ffdm) <= set(FFDM) and set(dbt) <= set(DBT)
    # Each epoch of a stream is a permutation of that stream.
    assert sorted(ffdm[:37]) == FFDM and sorted(ffdm[37:74]) == FFDM
    assert sorted(dbt[:10]) == DBT and sorted(dbt[10:20]) == DBT
    assert ffdm[:37] != ffdm[37:74]  # a new order each epoch
    assert plan(seed=4).batch_keys(0) != p.batch_keys(0)


def test_dbt_share_per_batch():
    assert dbt_per_batch(16, 0.25, 10, 5) == 4
    assert dbt_per_batch(4, 0.25, 10, 5) == 2  # at least 2: the slice loss needs a negative
    assert dbt_per_batch(1, 0.25, 10, 5) == 1
    assert dbt_per_batch(16, 0.25, 10, 0) == 0
    assert dbt_per_batch(16, 0.0, 10, 5) == 0
    assert dbt_per_batch(16, 0.25, 0, 5) == 16
    assert dbt_per_batch(64, 0.25, 10, 5) == 16
    p = plan(batch_size=16)
    for step in range(10):
        keys = p.batch_keys(step)
        assert sum(k.is_dbt for k in keys) == 4
        # Spread evenly: each half (rank of 2) holds 2.
        assert sum(k.is_dbt for k in keys[:8]) == 2
    only_ffdm = BatchPlan.from_indices(FFDM, [], 16)
    assert not any(k.is_dbt for k in only_ffdm.batch_keys(0))
    assert list(dbt_slots(8, 2)) == [False, False, False, True, False, False, False, True]


def test_mask_assignment_is_stratified():
    ranges = mask_assignment(0, 5, 16, 0.5, (0.1, 0.5))
    flat = [r for pair in ranges for r in pair]
    masked = sorted(r for r in flat if r is not None)
    assert len(masked) == 16
    edges = np.linspace(0.1, 0.5, 17)
    assert masked == [(pytest.approx(edges[i]), pytest.approx(edges[i + 1])) for i in range(16)]
    assert mask_assignment(0, 5, 16, 0.5, (0.1, 0.5)) == ranges
    assert mask_assignment(0, 6, 16, 0.5, (0.1, 0.5)) != ranges
    assert all(r is None for pair in mask_assignment(0, 0, 8, 0.0, (0.1, 0.5)) for r in pair)


def test_batch_keys_is_direct_not_iterative():
    p = plan()
    far = p.batch_keys(10**7)  # O(B): no iteration from the start
    assert far[0].position == 16 * 10**7


def test_bad_arguments():
    with pytest.raises(ConfigError, match="divisible"):
        batches(plan(batch_size=10), 3, world_size=4)
    with pytest.raises(ValueError, match="rank 2 of world size 2"):
        batches(plan(), 3, rank=2, world_size=2)
    with pytest.raises(UserError):
        BatchPlan.from_indices([], [], 8)
    assert len(batches(plan(), 3, start_step=5)) == 0 and len(batches(plan(), 5, 2, grad_accum=2)) == 6
