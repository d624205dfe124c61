"""The pretraining dataset: cached mammograms -> multi-crop views + iBOT masks.

One sample (FFDM): two independent global crops, ``crops.local_crops_number`` local crops,
the tissue fraction of every patch of the global crops and their iBOT masks.

One sample (DBT): slice ``z ~ U{e .. Z-1-e}`` (``e = data.dbt_edge_slices``, clamped for
thin volumes) and a neighbour ``z' = z +- d``, ``d ~ U{1 .. data.dbt_max_offset}``, inside
the same range when possible. Global crop 1 is slice ``z`` and global crop 2 slice ``z'``
**at the same box** (independent photometric augmentation), so DINO's global-to-global term
and the slice-contrast loss compare neighbouring slices of the same anatomy. Locals come from
slice ``z``. Slices are read through a memory map (only the two slices are read).

Determinism: ``dataset[key]`` depends only on ``(train.seed, key)``; its random generator is
``np.random.Generator(PCG64(SeedSequence([seed, key.position])))``. The number of processes,
DataLoader workers or the resume point cannot change a sample.

Example:
    >>> ds = PretrainDataset(["cache/"], cfg)
    >>> plan = BatchPlan(ds, cfg)                    # the global order: plan.batch_keys(step)
    >>> loader = build_loader(ds, plan, cfg)         # mammodino.train.loader: the one loader
    >>> batch = next(iter(loader))
    >>> batch["global_crops"].shape                  # (2 * B, 1, 224, 224)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mammodino.data.augment import GrayAugment, normalize
from mammodino.data.cache import CachedImage, open_cache
from mammodino.data.crops import Box, CropSampler, TissueMap, crop_resize
from mammodino.data.masking import sample_patch_mask
from mammodino.data.mim_masks import mae_masks, simmim_block_size, simmim_mask
from mammodino.data.batch_plan import BatchPlan, SampleKey
from mammodino.errors import UserError

MAX_STAND_INS = 8  # unreadable images in a row before a run stops

__all__ = ["PretrainDataset", "BatchPlan", "SampleKey", "collate", "dbt_slice_pair"]


def sample_rng(seed: int, position: int) -> np.random.Generator:
    """The random generator of the sample at ``position`` of a run seeded ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(position)])))


def dbt_slice_pair(n_slices: int, edge: int, max_offset: int, rng: np.random.Generator) -> tuple[int, int]:
    """``(z, z')`` with ``z`` uniform in ``[edge, Z-1-edge]`` and ``1 <= |z'-z| <= max_offset``.

    Thin volumes: the edge is reduced so the range is never empty; ``z'`` stays inside the
    edge-free range when possible, else anywhere in the volume; a single-slice volume gives
    ``(0, 0)``.
    """
    if n_slices <= 1:
        return 0, 0
    edge = max(0, min(int(edge), (n_slices - 1) // 2))
    lo, hi = edge, n_slices - 1 - edge
    z = int(rng.integers(lo, hi + 1))
    d = int(rng.integers(1, max(int(max_offset), 1) + 1))
    sign = 1 if rng.random() < 0.5 else -1
    for cand in (z + sign * d, z - sign * d):
        if lo <= cand <= hi:
            return z, cand
    for a, b in ((lo, hi), (0, n_slices - 1)):
        options = [c for c in range(z - max_offset, z + max_offset + 1) if c != z and a <= c <= b]
        if options:
            return z, int(options[rng.integers(len(options))])
    return z, z  # unreachable for n_slices >= 2, kept for safety


class PretrainDataset(torch.utils.data.Dataset):
    """All ok rows of one or more caches, as multi-crop training samples.

    Args:
        cache_dirs: cache folders written by ``mammodino index`` (a single path is accepted).
        cfg: the resolved config (sections crops, augment, data, ibot, model, train).
        seed: overrides ``train.seed``.

    Raises:
        UserError: a folder is not a cache, holds no usable image, or its files are missing.
    """

    def __init__(self, cache_dirs: Sequence[str | Path] | str | Path, cfg, seed: int | None = None):
        if isinstance(cache_dirs, (str, Path)):
            cache_dirs = [cache_dirs]
        if not cache_dirs:
            raise UserError("no cache folder given")
        # Compact per-item columns (numpy, no per-image Python objects): a million-image
        # archive costs tens of MB here, and is cheap to hand to DataLoader workers.
        dir_of, ids, image_files, mask_files, kinds, slices = [], [], [], [], [], []
        keep_suspect = bool(getattr(getattr(cfg, "data", None), "keep_qc_suspect", False))
        self.qc_left_out: dict[str, int] = {}  # cache folder -> suspect rows left out
        self.qc_unchecked: dict[str, int] = {}  # cache folder -> rows without qc (older caches: kept)
        for d, folder in enumerate(cache_dirs):
            folder = Path(folder)
            if not folder.is_dir():
                raise UserError(f"{folder}: no such cache folder")
            rows = [it.row for it in open_cache(folder)]
            unchecked = sum(1 for r in rows if not r.get("qc"))
            if unchecked:
                self.qc_unchecked[str(folder)] = unchecked
            if not keep_suspect:
                kept = [r for r in rows if r.get("qc") != "suspect"]
                if len(kept) < len(rows):
                    self.qc_left_out[str(folder)] = len(rows) - len(kept)
                if not kept:
                    raise UserError(f"{folder}: every one of its {len(rows)} ok rows is qc=suspect (see `mammodino qc "
                                    f"{folder} --out DIR`); set data.keep_qc_suspect=true to train on them anyway")
                rows = kept
            for rel in (rows[0].get("image_file"), rows[0].get("mask_file")):
                if not rel or not (folder / rel).exists():
                    raise UserError(f"{folder}: the manifest names {rel!r}, which is missing: re-run `mammodino index`")
                try:
                    np.load(folder / rel, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise UserError(f"{folder}: {rel} is damaged ({exc}): re-run `mammodino index` "
                                    "into a new folder") from None
            dir_of += [d] * len(rows)
            ids += [r["id"] for r in rows]
            image_files += [r["image_file"] for r in rows]
            mask_files += [r["mask_file"] for r in rows]
            kinds += [r["kind"] == "dbt" for r in rows]
            slices += [int(r.get("slices") or 1) for r in rows]
        self._dir_of = np.asarray(dir_of, dtype=np.int32)
        self._ids = np.asarray([v.encode() for v in ids], dtype=np.bytes_)
        self._image_files = np.asarray([v.encode() for v in image_files], dtype=np.bytes_)
        self._mask_files = np.asarray([v.encode() for v in mask_files], dtype=np.bytes_)
        self._is_dbt = np.asarray(kinds, dtype=bool)
        self._slices = np.asarray(slices, dtype=np.int32)
        self.cache_dirs = [Path(c) for c in cache_dirs]
        self.cfg = cfg
        self.seed = int(cfg.train.seed if seed is None else seed)
        self.crops = CropSampler.from_config(cfg.crops)
        self.augment = GrayAugment.from_config(cfg.augment)
        self.global_size = int(cfg.crops.global_crop_size)
        self.local_size = int(cfg.crops.local_crop_size)
        self.n_local = int(cfg.crops.local_crops_number)
        self.patch_size = int(cfg.model.patch_size)
        self.grid = self.global_size // self.patch_size
        self.hflip = bool(cfg.crops.hflip)
        # Random sampler = plain DINOv2: masks anywhere, ratio of all patches.
        self.mask_min_tissue = float(cfg.crops.mask_min_tissue) if self.crops.tissue_aware else None
        self.mask_probability = float(cfg.ibot.mask_sample_probability)
        # method: mae | simmim replace the iBOT masks by their own (data.mim_masks); every
        # global crop is masked, with the same tissue rule as iBOT.
        self.method = str(cfg.get("method", "mammodino"))
        self.mae_ratio = float(cfg.mae.mask_ratio) if "mae" in cfg else 0.75
        self.simmim_ratio = float(cfg.simmim.mask_ratio) if "simmim" in cfg else 0.6
        self.simmim_block = simmim_block_size(int(cfg.simmim.mask_block_px) if "simmim" in cfg else 32,
                                              self.patch_size)
        self.mask_ratio = tuple(float(v) for v in cfg.ibot.mask_ratio_min_max)
        self.dbt_edge = int(cfg.data.dbt_edge_slices)
        self.dbt_max_offset = int(cfg.data.dbt_max_offset)
        self.ffdm_indices = np.flatnonzero(~self._is_dbt)
        self.dbt_indices = np.flatnonzero(self._is_dbt)
        self.unreadable: dict[str, str] = {}  # id -> why (this process), reported once

    def __len__(self) -> int:
        return len(self._is_dbt)

    def is_dbt(self, index: int) -> bool:
        return bool(self._is_dbt[int(index)])

    def item(self, index: int) -> CachedImage:
        """The cached image or volume behind item ``index``."""
        i = int(index)
        row = {
            "id": self._ids[i].decode(),
            "kind": "dbt" if self._is_dbt[i] else "ffdm",
            "slices": int(self._slices[i]),
            "image_file": self._image_files[i].decode(),
            "mask_file": self._mask_files[i].decode(),
        }
        return CachedImage(self.cache_dirs[self._dir_of[i]], row)

    @property
    def items(self) -> "_Items":
        """``items[i]`` is :meth:`item` ``(i)``."""
        return _Items(self)

    def make_key(self, index: int, position: int | None = None) -> SampleKey:
        """A key for item ``index`` outside of a sampler (masks drawn by the dataset)."""
        index = int(index)
        return SampleKey(index if position is None else int(position), index, bool(self._is_dbt[index]), None)

    def __getitem__(self, key) -> dict:
        """The sample of ``key``. An image that cannot be read any more (deleted, truncated or
        replaced since the manifest was checked) does not stop the run: it is reported once
        (stderr) and the next image of the same kind stands in for this sample; after
        ``MAX_STAND_INS`` unreadable images in a row the run stops with a clear error."""
        if not isinstance(key, SampleKey):
            key = self.make_key(key) if np.isscalar(key) else SampleKey(*key)
        pool = self.dbt_indices if self._is_dbt[int(key.index)] else self.ffdm_indices
        start = int(np.searchsorted(pool, int(key.index)))
        reasons = []
        for attempt in range(min(MAX_STAND_INS, len(pool))):
            index = int(pool[(start + attempt) % len(pool)])
            try:
                return self._sample(key._replace(index=index) if index != key.index else key)
            except UserError as exc:
                reasons.append(str(exc))
                if self.item(index).id not in self.unreadable:
                    self.unreadable[self.item(index).id] = str(exc)
                    print(f"warning: {exc}; another image stands in for it", file=sys.stderr, flush=True)
        raise UserError(f"{len(reasons)} cached images in a row could not be read (last: {reasons[-1]}); "
                        "re-run `mammodino index` on the sources")

    def _sample(self, key: SampleKey) -> dict:
        item = self.item(key.index)
        rng = sample_rng(self.seed, key.position)
        breast = item.breast_mask()
        tissue = TissueMap(breast)
        mask_ranges = key.mask_ranges if key.mask_ranges is not None else self._draw_mask_ranges(rng)

        if item.is_dbt:
            z1, z2 = dbt_slice_pair(item.n_slices, self.dbt_edge, self.dbt_max_offset, rng)
            volume = item.volume()
            img1 = np.asarray(volume[z1])
            img2 = np.asarray(volume[z2])
            box1, _ = self.crops.global_box(tissue, rng)
            box2 = box1
        else:
            z1 = z2 = -1
            img1 = img2 = item.image()
            box1, _ = self.crops.global_box(tissue, rng)
            box2, _ = self.crops.global_box(tissue, rng)
        if img1.shape != breast.shape:
            raise UserError(f"{item.cache_dir}: image {item.id} is {img1.shape} but its breast mask is {breast.shape}")

        globals_, masks, visible, patch_tissue = [], [], [], []
        for c, (img, box, kind) in enumerate(((img1, box1, "global1"), (img2, box2, "global2"))):
            crop, frac = self._view(img, box, self.global_size, rng, kind, tissue)
            patch_mask, patch_visible = self._patch_masks(frac, mask_ranges[c], rng)
            globals_.append(torch.from_numpy(crop)[None])
            masks.append(patch_mask.reshape(-1))
            visible.append(patch_visible.reshape(-1))
            patch_tissue.append(frac.reshape(-1))

        locals_, local_boxes = [], []
        for _ in range(self.n_local):
            box, _ = self.crops.local_box(tissue, rng)
            crop, _ = self._view(img1, box, self.local_size, rng, "local", None)
            locals_.append(torch.from_numpy(crop)[None])
            local_boxes.append(tuple(box))

        sample = {
            "global_crops": globals_,
            "local_crops": locals_,
            "masks": torch.from_numpy(np.stack(masks)),
            "patch_tissue": torch.from_numpy(np.stack(patch_tissue)),
            "is_dbt": bool(item.is_dbt),
            "index": int(key.index),
            "position": int(key.position),
            "slices": (int(z1), int(z2)),
            "global_boxes": [tuple(box1), tuple(box2)],
            "local_boxes": local_boxes,
        }
        if self.method == "mae":
            sample["visible"] = torch.from_numpy(np.stack(visible))
        return sample

    def _patch_masks(self, frac: np.ndarray, mask_range, rng) -> tuple[np.ndarray, np.ndarray]:
        """(masked, visible) patches of one global crop: iBOT's block mask (mammodino, dinov2;
        visible = not masked), MAE's random mask with its visible set, or SimMIM's block mask."""
        if self.method == "mae":
            eligible = np.ones(frac.shape, dtype=bool) if self.mask_min_tissue is None else frac >= self.mask_min_tissue
            return mae_masks(eligible, self.mae_ratio, rng)
        if self.method == "simmim":
            mask = simmim_mask(frac, self.simmim_ratio, self.simmim_block, rng, self.mask_min_tissue)
        else:
            mask = sample_patch_mask(frac, mask_range, rng, self.mask_min_tissue)
        return mask, ~mask

    def _draw_mask_ranges(self, rng: np.random.Generator):
        """Outside a sampler: each global crop masked with ``mask_sample_probability``."""
        return tuple(self.mask_ratio if rng.random() < self.mask_probability else None for _ in range(2))

    def _view(self, img, box: Box, size: int, rng, kind: str, tissue: TissueMap | None):
        """Crop + resize + photometric augmentation (+ optional flip) + normalisation."""
        crop = crop_resize(img, box, size)
        frac = tissue.patch_fractions(box, self.grid) if tissue is not None else None
        params = self.augment.draw(rng, kind)
        flip = self.hflip and rng.random() < 0.5
        crop = self.augment.apply(crop, params)
        if flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
            if frac is not None:
                frac = np.ascontiguousarray(frac[:, ::-1])
        return normalize(crop), frac


class _Items:
    def __init__(self, dataset: PretrainDataset):
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> CachedImage:
        return self._dataset.item(index)


def collate(samples: list[dict]) -> dict:
    """Batch samples in DINOv2's layout, with its iBOT bookkeeping.

    Returns a dict with ``global_crops`` (2B, 1, G, G) = [crop 1 of every sample, then crop 2];
    ``local_crops`` (L*B, 1, l, l) = [local 1 of every sample, local 2, ...]; ``masks`` bool
    (2B, N) in the order of ``global_crops``; ``mask_indices_list`` (flat indices of masked
    patches in ``masks.flatten()``); ``masks_weight`` (1 / masked patches of its crop, per
    masked patch); ``n_masked_patches`` long (1,); ``upperbound`` (int, = the exact count,
    since masks are exact); ``patch_tissue`` float (2B, N); ``is_dbt`` bool (B,); ``index`` and
    ``position`` long (B,); ``slices`` long (B, 2) (``-1`` for FFDM); with ``method: mae``
    also ``visible_indices`` long (2B, K), the patches each global crop's encoder sees.
    """
    B = len(samples)
    n_global = len(samples[0]["global_crops"])
    n_local = len(samples[0]["local_crops"])
    global_crops = torch.stack([s["global_crops"][i] for i in range(n_global) for s in samples])
    if n_local:
        local_crops = torch.stack([s["local_crops"][i] for i in range(n_local) for s in samples])
    else:
        local_crops = torch.empty((0, 1, 0, 0), dtype=torch.float32)
    masks = torch.stack([s["masks"][i] for i in range(n_global) for s in samples])
    patch_tissue = torch.stack([s["patch_tissue"][i] for i in range(n_global) for s in samples])
    mask_indices_list = masks.flatten().nonzero().flatten()
    masks_weight = (1 / masks.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(masks)[masks]
    n_masked = int(mask_indices_list.shape[0])
    extra = {}
    if "visible" in samples[0]:  # MAE: the patches the encoder sees, (2B, K) in row-major order
        visible = torch.stack([s["visible"][i] for i in range(n_global) for s in samples])
        extra["visible_indices"] = visible.nonzero()[:, 1].reshape(visible.shape[0], -1)
    return {**extra,
        "global_crops": global_crops,
        "local_crops": local_crops,
        "masks": masks,
        "mask_indices_list": mask_indices_list,
        "masks_weight": masks_weight,
        "n_masked_patches": torch.full((1,), fill_value=n_masked, dtype=torch.long),
        "upperbound": n_masked,
        "patch_tissue": patch_tissue,
        "is_dbt": torch.tensor([s["is_dbt"] for s in samples], dtype=torch.bool),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
        "position": torch.tensor([s["position"] for s in samples], dtype=torch.long),
        "slices": torch.tensor([s["slices"] for s in samples], dtype=torch.long).reshape(B, 2),
    }
