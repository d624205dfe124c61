"""MAE and SimMIM masks: counts, disjointness, tissue rule, SimMIM block structure."""

import numpy as np
import pytest

from mammodino.data.mim_masks import mae_masks, mae_visible_count, simmim_block_size, simmim_mask


def test_mae_plain_is_random_75_percent_with_constant_visible_set():
    rng = np.random.default_rng(0)
    elig = np.ones((6, 6), bool)
    seen = np.zeros(36)
    for _ in range(200):
        target, visible = mae_masks(elig, 0.75, rng)
        assert visible.sum() == mae_visible_count(36, 0.75) == 9
        assert target.sum() == 27 and not (target & visible).any()
        seen += target.reshape(-1)
    assert seen.min() > 100 and seen.max() < 200      # uniform: each patch masked ~150 times


def test_mae_tissue_aware_masks_tissue_and_shows_tissue_first():
    rng = np.random.default_rng(1)
    elig = np.zeros((4, 4), bool)
    elig[:, :3] = True                                 # 12 tissue patches, 4 background
    target, visible = mae_masks(elig, 0.75, rng)
    assert target.sum() == 9 and (target <= elig).all()        # 75 % of the tissue, only tissue
    assert visible.sum() == 4 and not (target & visible).any()
    # the 3 unmasked tissue patches are all shown, one background patch fills K = 4
    assert (visible & elig).sum() == 3 and (visible & ~elig).sum() == 1

def test_simmim_block_mask_is_blocks_with_ceil_count():
    rng = np.random.default_rng(2)
    assert simmim_block_size(32, 16) == 2 and simmim_block_size(32, 14) == 2 and simmim_block_size(8, 16) == 1
    m = simmim_mask(np.ones((6, 6)), 0.6, 2, rng, None)
    blocks = m.reshape(3, 2, 3, 2).transpose(0, 2, 1, 3).reshape(9, 4)
    assert set(blocks.sum(1).tolist()) <= {0, 4}                  # whole 2x2 blocks
    assert blocks.all(1).sum() == 6                               # ceil(9 * 0.6) = 6
    # grid not a multiple of the block: partial edge blocks, still ceil(16 * 0.6) = 10 blocks
    m7 = simmim_mask(np.ones((7, 7)), 0.6, 2, rng, None)
    assert m7.shape == (7, 7) and m7.any()


def test_simmim_tissue_aware_masks_only_tissue_blocks():
    rng = np.random.default_rng(3)
    tissue = np.zeros((6, 6))
    tissue[:, :4] = 1.0                                 # blocks of the two left block columns are tissue
    for _ in range(20):
        m = simmim_mask(tissue, 0.6, 2, rng, 0.5)
        assert not m[:, 4:].any()
        assert m.sum() == 4 * 4                         # ceil(6 * 0.6) = 4 tissue blocks of 4 patches
