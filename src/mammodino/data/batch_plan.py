"""The global, position-addressable order of training samples.

A run sees one global sequence of sample keys, cut into global batches of ``B``. Step ``s``
holds positions ``s*B .. s*B+B-1``. Everything about a sample (which image, its crops, its
masks) is a pure function of ``(seed, position)``, so:

* ``batch_keys(step)`` is computed directly, without iterating from the start: resuming at
  step ``k`` costs one permutation per stream, not ``k`` batches;
* rank ``r`` of ``W`` processes takes the contiguous slice ``keys[r*B/W : (r+1)*B/W]``: the
  global order is the same for any number of processes, and a run resumed on a different
  number of processes continues the same order (the state is just ``samples_consumed``);
* worker count and DataLoader prefetching change nothing.

Composition of a global batch: ``n_dbt = round(dbt_fraction * B)`` samples come from DBT
volumes and the rest from FFDM images. When ``dbt_fraction > 0`` and the data holds DBT,
``n_dbt`` is at least 2 (the slice-contrast loss needs another DBT sample as a negative); with
no FFDM at all every sample is DBT, with no DBT none is. The DBT positions are spread evenly
over the batch (``j`` is DBT when ``floor((j+1)*n_dbt/B) > floor(j*n_dbt/B)``), so each rank's
slice and each gradient-accumulation micro-batch gets its share.

Each stream (FFDM, DBT) is an endless concatenation of epochs, each a permutation of that
stream's images seeded by ``(seed, stream, epoch)``. The FFDM stream consumes ``B - n_dbt``
images per step, the DBT stream ``n_dbt``; so a DBT volume recurs more often than an FFDM
image when DBT is rarer than ``dbt_fraction`` in the data (by design: the slice loss needs
them).

iBOT masks: of the ``2B`` global crops of a global batch, ``int(2B * mask_probability)`` are
masked, each with its own slice ``[lo_k, hi_k]`` of ``linspace(*mask_ratio_min_max)``
(DINOv2's stratification, done by DINOv2 per process in its collate). Which crop gets which
slice is a permutation seeded by ``(seed, step)``; the key carries the result, so masks do not
depend on the number of processes either.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Sequence

import numpy as np

from mammodino.data.masking import mask_ratio_bins
from mammodino.errors import ConfigError, UserError

# Separate random streams of one seed.
_STREAM_FFDM = 1
_STREAM_DBT = 2
_STREAM_MASK = 3

MaskRange = tuple[float, float] | None


class SampleKey(NamedTuple):
    """Everything that determines one training sample.

    Attributes:
        position: global position in the run's sample stream (``step * B + j``); the sample's
            random generator is seeded by ``(seed, position)``.
        index: item index in the dataset (all caches concatenated, manifest order).
        is_dbt: the item is a DBT volume.
        mask_ranges: ratio range ``(lo, hi)`` or ``None`` (not masked) for global crop 1 and 2;
            ``None`` as a whole: let the dataset draw it (masked with ``mask_sample_probability``).
    """

    position: int
    index: int
    is_dbt: bool
    mask_ranges: tuple[MaskRange, MaskRange] | None = None


def dbt_per_batch(batch_size: int, dbt_fraction: float, n_ffdm: int, n_dbt: int) -> int:
    """How many of the ``batch_size`` samples of a global batch are DBT."""
    if n_dbt == 0:
        return 0
    if n_ffdm == 0:
        return batch_size
    if dbt_fraction <= 0:
        return 0
    return min(batch_size, max(2, int(round(dbt_fraction * batch_size))))


def dbt_slots(batch_size: int, n_dbt: int) -> np.ndarray:
    """Bool (B,): which positions of a batch are DBT, spread evenly."""
    j = np.arange(batch_size)
    return (j + 1) * n_dbt // batch_size > j * n_dbt // batch_size


def mask_assignment(
    seed: int, step: int, batch_size: int, mask_probability: float, ratio_min_max: tuple[float, float]
) -> list[tuple[MaskRange, MaskRange]]:
    """Per sample of a global batch, the mask ratio range of its two global crops."""
    n_crops = 2 * batch_size
    n_masked = int(n_crops * mask_probability)
    bins = mask_ratio_bins(ratio_min_max, n_masked)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _STREAM_MASK, step])))
    slots = rng.permutation(n_crops)
    ranges: list[MaskRange] = [None] * n_crops
    for k in range(n_masked):
        ranges[int(slots[k])] = bins[k]
    # Slot c*B + j is global crop c of sample j (the collated order).
    return [(ranges[j], ranges[batch_size + j]) for j in range(batch_size)]


class EpochStream:
    """An endless sequence of item indices: per epoch a seeded permutation of ``items``,
    read at any position without iterating from the start (the pretraining plan's FFDM and
    DBT streams, the fine-tune plan's rows).

    Epoch ``e`` is permuted by the generator seeded with ``[*seed_words, e, *suffix_words]``
    (each plan keeps the words its runs were started with, so resumed runs continue exactly).
    """

    def __init__(self, items: Sequence[int], seed_words: Sequence[int], suffix_words: Sequence[int] = (),
                 cache_epochs: int = 4):
        self.items = np.asarray(items, dtype=np.int64)
        self.seed_words = [int(w) for w in seed_words]
        self.suffix_words = [int(w) for w in suffix_words]
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_epochs = cache_epochs

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            words = [*self.seed_words, epoch, *self.suffix_words]
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
            perm = self.items[rng.permutation(len(self.items))]
            self._perms[epoch] = perm
            while len(self._perms) > self._cache_epochs:
                self._perms.popitem(last=False)
        return perm

    def take(self, start: int, count: int) -> list[int]:
        """Items at stream positions ``start .. start+count-1``."""
        n = len(self.items)
        out = []
        for p in range(start, start + count):
            epoch, offset = divmod(p, n)
            out.append(int(self._perm(epoch)[offset]))
        return out


class BatchPlan:
    """The global sequence of sample keys of a run: ``batch_keys(step)`` for any step.

    Args:
        dataset: anything with ``ffdm_indices`` and ``dbt_indices`` (a ``PretrainDataset``).
        cfg: the resolved config (``train.batch_size``, ``train.seed``, ``data.dbt_fraction``,
            ``ibot.mask_sample_probability``, ``ibot.mask_ratio_min_max``).

    Example:
        >>> plan = BatchPlan(dataset, cfg)
        >>> keys = plan.batch_keys(1000)      # global batch of step 1000, computed directly
    """

    def __init__(self, dataset, cfg):
        self._setup(
            dataset.ffdm_indices,
            dataset.dbt_indices,
            int(cfg.train.batch_size),
            seed=int(cfg.train.seed),
            dbt_fraction=float(cfg.data.dbt_fraction),
            mask_probability=float(cfg.ibot.mask_sample_probability),
            mask_ratio_min_max=tuple(cfg.ibot.mask_ratio_min_max),
        )

    @classmethod
    def from_indices(
        cls,
        ffdm_indices: Sequence[int],
        dbt_indices: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        dbt_fraction: float = 0.25,
        mask_probability: float = 0.5,
        mask_ratio_min_max: tuple[float, float] = (0.1, 0.5),
    ) -> "BatchPlan":
        plan = cls.__new__(cls)
        plan._setup(ffdm_indices, dbt_indices, batch_size, seed=seed, dbt_fraction=dbt_fraction,
                    mask_probability=mask_probability, mask_ratio_min_max=mask_ratio_min_max)
        return plan

    def _setup(self, ffdm_indices, dbt_indices, batch_size, *, seed, dbt_fraction, mask_probability,
               mask_ratio_min_max) -> None:
        if not len(ffdm_indices) and not len(dbt_indices):
            raise UserError("the sampler has no image to draw from")
        if batch_size <= 0:
            raise ConfigError(f"config key 'train.batch_size': must be > 0, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.dbt_fraction = float(dbt_fraction)
        self.mask_probability = float(mask_probability)
        self.mask_ratio_min_max = (float(mask_ratio_min_max[0]), float(mask_ratio_min_max[1]))
        self.n_dbt = dbt_per_batch(self.batch_size, self.dbt_fraction, len(ffdm_indices), len(dbt_indices))
        self.n_ffdm = self.batch_size - self.n_dbt
        self._dbt_slot = dbt_slots(self.batch_size, self.n_dbt)
        self._ffdm = EpochStream(ffdm_indices, (self.seed, _STREAM_FFDM)) if len(ffdm_indices) else None
        self._dbt = EpochStream(dbt_indices, (self.seed, _STREAM_DBT)) if len(dbt_indices) else None

    def batch_keys(self, step: int) -> list[SampleKey]:
        """The ``B`` keys of global batch ``step`` (all ranks), in O(B)."""
        step = int(step)
        B = self.batch_size
        ffdm = self._ffdm.take(step * self.n_ffdm, self.n_ffdm) if self.n_ffdm else []
        dbt = self._dbt.take(step * self.n_dbt, self.n_dbt) if self.n_dbt else []
        masks = mask_assignment(self.seed, step, B, self.mask_probability, self.mask_ratio_min_max)
        keys = []
        fi = di = 0
        for j in range(B):
            if self._dbt_slot[j]:
                index, is_dbt = dbt[di], True
                di += 1
            else:
                index, is_dbt = ffdm[fi], False
                fi += 1
            keys.append(SampleKey(step * B + j, index, is_dbt, masks[j]))
        return keys
