"""Patch masks of the masked-image-modelling baselines (``method: mae | simmim``).

MAE (facebookresearch/mae ``random_masking``): keep ``K = int(N * (1 - r))`` of the N patches,
chosen uniformly at random; the encoder sees only those, the
decoder reconstructs the others. Here the draw is made per sample in the dataset (a pure
function of the sample's generator, like the iBOT masks) and returns both the *target* mask
(patches the loss scores) and the *visible* set (patches the encoder sees).

Tissue-aware MAE (``crops.sampler: tissue``): the target is ``int(r * n_eligible)`` of the
*eligible* (tissue) patches, so 75 % of the breast is hidden and scored; the encoder still
sees exactly ``K`` patches (constant, so a batch stacks without padding): the unmasked tissue
patches first, then background ones drawn at random to fill ``K``. Background patches left
over are neither seen nor scored. With every patch eligible this is plain MAE.

SimMIM (microsoft/SimMIM ``MaskGenerator``): the crop is cut into blocks of
``mask_block_px`` pixels (whole patches: ``round(mask_block_px / patch_size)``, at least 1;
edge blocks may be partial when the grid is not a multiple), ``ceil(n_blocks * r)`` blocks
are masked uniformly at random. Tissue-aware: a block is eligible when its mean patch tissue
fraction is >= the threshold, and ``ceil(n_eligible * r)`` eligible blocks are masked.
"""

from __future__ import annotations

import math

import numpy as np


def mae_visible_count(n_patches: int, mask_ratio: float) -> int:
    """MAE's ``len_keep = int(N * (1 - mask_ratio))`` (at least one patch stays visible)."""
    return max(1, int(n_patches * (1.0 - float(mask_ratio))))


def mae_masks(eligible: np.ndarray, mask_ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(target, visible) bool masks of the shape of ``eligible`` for one crop.

    ``target``: ``int(mask_ratio * n_eligible)`` eligible patches (all of them when every patch is
    eligible: MAE's masked set). ``visible``: exactly :func:`mae_visible_count` patches, disjoint
    from ``target``, eligible ones first.
    """
    eligible = np.asarray(eligible, dtype=bool)
    flat = eligible.reshape(-1)
    n = flat.size
    keep = mae_visible_count(n, mask_ratio)
    elig_idx = np.flatnonzero(flat)
    n_target = min(int(float(mask_ratio) * elig_idx.size), n - keep)
    order = rng.permutation(elig_idx)
    target = np.zeros(n, dtype=bool)
    target[order[:n_target]] = True
    rest_tissue = order[n_target:]
    background = rng.permutation(np.flatnonzero(~flat))
    visible_idx = np.concatenate([rest_tissue, background])[:keep]
    visible = np.zeros(n, dtype=bool)
    visible[visible_idx] = True
    return target.reshape(eligible.shape), visible.reshape(eligible.shape)


def simmim_block_size(mask_block_px: int, patch_size: int) -> int:
    """Patches per side of a SimMIM mask block (32 px at patch 16 -> 2; at patch 14 -> 2, i.e. 28 px)."""
    return max(1, int(round(float(mask_block_px) / float(patch_size))))


def simmim_mask(patch_tissue: np.ndarray, mask_ratio: float, block: int, rng: np.random.Generator,
                min_tissue: float | None) -> np.ndarray:
    """SimMIM's block mask of one crop, (h, w) bool over patches.

    Args:
        patch_tissue: (h, w) tissue fraction per patch.
        mask_ratio: share of the (eligible) blocks masked, rounded up as SimMIM does.
        block: block side in patches (:func:`simmim_block_size`).
        rng: numpy Generator.
        min_tissue: blocks whose mean tissue fraction is >= this are eligible; None: all blocks.
    """
    patch_tissue = np.asarray(patch_tissue, dtype=np.float64)
    gh, gw = patch_tissue.shape
    bh, bw = math.ceil(gh / block), math.ceil(gw / block)
    if min_tissue is None:
        eligible = np.ones(bh * bw, dtype=bool)
    else:
        pad = np.full((bh * block, bw * block), np.nan)
        pad[:gh, :gw] = patch_tissue
        means = np.nanmean(pad.reshape(bh, block, bw, block), axis=(1, 3))
        eligible = (means >= min_tissue).reshape(-1)
    idx = np.flatnonzero(eligible)
    n_mask = int(math.ceil(idx.size * float(mask_ratio)))
    chosen = np.zeros(bh * bw, dtype=bool)
    chosen[rng.permutation(idx)[:n_mask]] = True
    full = np.repeat(np.repeat(chosen.reshape(bh, bw), block, axis=0), block, axis=1)
    return np.ascontiguousarray(full[:gh, :gw])
