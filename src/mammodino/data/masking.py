"""iBOT patch masks: BEiT-style rectangular blocks, restricted to breast-tissue patches.

DINOv2 (``dinov2/data/masking.py`` + ``collate_data_and_cast``) masks
``int(N * U(lo_k, hi_k))`` of the N patches of a global crop with rectangular blocks (area
``U(4, remaining)`` patches, at most N/2, aspect ratio log-uniform in (0.3, 1/0.3)); within a
batch, ``int(2B * mask_probability)`` crops are masked and their ratio ranges
``[lo_k, hi_k]`` are consecutive slices of ``linspace(*mask_ratio_min_max, n_masked + 1)``, so
the batch covers the whole ratio range evenly (stratified), the others are unmasked.

MammoDINO keeps all of that but counts and places masks on **eligible** patches only: a
patch is eligible when its tissue fraction is >= ``crops.mask_min_tissue`` (tissue sampler)
or always (random sampler, i.e. DINOv2). The number masked is ``int(r * n_eligible)``.

Two deliberate differences from DINOv2's generator, both so the count is exact and the mask
never lands on background:

* each block is anchored on a random eligible, still unmasked patch (DINOv2 places the
  top-left corner uniformly, which on a half-empty crop wastes most tries on air); only the
  eligible cells inside the block are masked;
* when 10 tries cannot place a block that fits in the remaining budget (DINOv2 then stops
  short), the last block is trimmed to the cells nearest its anchor, so exactly
  ``int(r * n_eligible)`` patches are masked.

The stratified per-batch assignment is done by the sampler over the *global* batch (see
``mammodino.data.batch_plan.mask_assignment``), so masks are a pure function of the sample key
and do not depend on the number of processes or workers.
"""

from __future__ import annotations

import math

import numpy as np

MIN_BLOCK_PATCHES = 4
BLOCK_ASPECT = (0.3, 1 / 0.3)
MAX_BLOCK_FRACTION = 0.5  # of all patches, as DINOv2's max_num_patches = 0.5 * N
BLOCK_TRIES = 10


def block_mask(
    eligible: np.ndarray,
    n_mask: int,
    rng: np.random.Generator,
    min_block: int = MIN_BLOCK_PATCHES,
    aspect: tuple[float, float] = BLOCK_ASPECT,
    max_block: int | None = None,
) -> np.ndarray:
    """Mask exactly ``min(n_mask, eligible.sum())`` eligible patches with rectangular blocks.

    Args:
        eligible: (h, w) bool grid of patches that may be masked.
        n_mask: patches to mask.
        rng: numpy Generator (all randomness comes from it).
        min_block: smallest block area drawn (patches).
        aspect: block aspect-ratio range, drawn log-uniformly.
        max_block: largest block area (default half the grid, as DINOv2).

    Returns:
        (h, w) bool mask, a subset of ``eligible``.
    """
    eligible = np.asarray(eligible, dtype=bool)
    gh, gw = eligible.shape
    mask = np.zeros((gh, gw), dtype=bool)
    n_mask = int(min(n_mask, int(eligible.sum())))
    if n_mask <= 0:
        return mask
    if max_block is None:
        max_block = max(int(MAX_BLOCK_FRACTION * gh * gw), 1)
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    count = 0
    while count < n_mask:
        budget = min(n_mask - count, max_block)
        free = np.flatnonzero(eligible & ~mask)
        delta = 0
        for _ in range(BLOCK_TRIES):
            area = rng.uniform(min_block, budget) if budget > min_block else float(budget)
            ratio = math.exp(rng.uniform(*log_aspect))
            h = min(max(int(round(math.sqrt(area * ratio))), 1), gh)
            w = min(max(int(round(math.sqrt(area / ratio))), 1), gw)
            anchor = int(free[rng.integers(free.size)])
            ay, ax = divmod(anchor, gw)
            top = min(max(ay - int(rng.integers(h)), 0), gh - h)
            left = min(max(ax - int(rng.integers(w)), 0), gw - w)
            sub_new = eligible[top : top + h, left : left + w] & ~mask[top : top + h, left : left + w]
            new = int(sub_new.sum())
            if 0 < new <= budget:
                mask[top : top + h, left : left + w] |= sub_new
                delta = new
                break
        if delta == 0:
            # Trim the last block to the `budget` new cells nearest its anchor.
            ys, xs = np.nonzero(sub_new)
            order = np.argsort((ys + top - ay) ** 2 + (xs + left - ax) ** 2, kind="stable")[:budget]
            mask[ys[order] + top, xs[order] + left] = True
            delta = int(order.size)
        count += delta
    return mask


def mask_ratio_bins(ratio_min_max: tuple[float, float], n_masked: int) -> list[tuple[float, float]]:
    """DINOv2's stratification: the ratio range of each of ``n_masked`` masked crops."""
    edges = np.linspace(float(ratio_min_max[0]), float(ratio_min_max[1]), n_masked + 1)
    return [(float(edges[i]), float(edges[i + 1])) for i in range(n_masked)]


def sample_patch_mask(
    patch_tissue: np.ndarray,
    ratio_range: tuple[float, float] | None,
    rng: np.random.Generator,
    min_tissue: float | None,
) -> np.ndarray:
    """The iBOT mask of one global crop.

    Args:
        patch_tissue: (h, w) tissue fraction per patch.
        ratio_range: ``(lo, hi)``: mask ``int(U(lo, hi) * n_eligible)`` patches; ``None``:
            this crop is not masked.
        rng: numpy Generator.
        min_tissue: patches with at least this tissue fraction are eligible; ``None``: every
            patch (plain DINOv2 / random sampler).

    Returns:
        (h, w) bool mask.
    """
    if ratio_range is None:
        return np.zeros(patch_tissue.shape, dtype=bool)
    eligible = np.ones(patch_tissue.shape, dtype=bool) if min_tissue is None else patch_tissue >= min_tissue
    ratio = rng.uniform(*ratio_range)
    return block_mask(eligible, int(ratio * int(eligible.sum())), rng)
