"""PretrainDataset + collate on small caches written here in the cache.py layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mammodino.config import load_config
from mammodino.data.batch_plan import BatchPlan, SampleKey
from mammodino.data.dataset import PretrainDataset, collate, dbt_slice_pair, sample_rng
from mammodino.errors import UserError
from mammodino.train.loader import build_loader
from support.array_cache import write_array_cache


def write_cache(out: Path, entries: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    """A cache folder as ``mammodino index`` writes it: entries are (kind, image, mask)."""
    out.mkdir(parents=True, exist_ok=True)
    return write_array_cache(out, [
        dict(id=f"{i:02x}{'ab' * 7}", source=f"src/{i}.dcm", stem=str(i), kind=kind, laterality="L", view="CC",
             image=image, mask=mask)
        for i, (kind, image, mask) in enumerate(entries)])


def left_half_breast(h: int = 96, w: int = 80, seed: int = 0, z: int | None = None):
    """Tissue on the left half (bright, textured), background dark on the right."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 1
    shape = (h, w) if z is None else (z, h, w)
    image = (rng.random(shape) * 20000).astype(np.uint16)
    image[..., : w // 2] += 30000
    if z is not None:  # each slice distinguishable: slice k has offset 100 * k
        image += (np.arange(z, dtype=np.uint16) * 100)[:, None, None]
    return image, mask


@pytest.fixture()
def cfg():
    return load_config("cpu-tiny", ["crops.global_crop_size=32", "crops.local_crop_size=16",
                                    "crops.local_crops_number=2", "model.patch_size=8",
                                    "train.batch_size=8", "data.num_workers=0"])


@pytest.fixture()
def cache(tmp_path):
    entries = [("ffdm", *left_half_breast(seed=s)) for s in range(6)]
    entries += [("dbt", *left_half_breast(seed=10 + s, z=12)) for s in range(3)]
    return write_cache(tmp_path / "cache", entries)


def test_sample_shapes_and_types(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    assert len(ds) == 9 and list(ds.dbt_indices) == [6, 7, 8]
    s = ds[0]
    assert [tuple(t.shape) for t in s["global_crops"]] == [(1, 32, 32)] * 2
    assert [tuple(t.shape) for t in s["local_crops"]] == [(1, 16, 16)] * 2
    assert s["masks"].dtype == torch.bool and tuple(s["masks"].shape) == (2, 16)
    assert s["global_crops"][0].dtype == torch.float32
    assert s["slices"] == (-1, -1) and not s["is_dbt"]


def test_global_crops_sit_on_tissue_random_ones_do_not(cache, cfg):
    """Breast on the left half: 200 tissue-aware global crops are all >= 50 % tissue."""
    mask = left_half_breast()[1]
    fractions = {}
    for sampler in ("tissue", "random"):
        cfg.crops.sampler = sampler
        ds = PretrainDataset([cache], cfg)
        fr = []
        for pos in range(100):
            s = ds[SampleKey(pos, pos % 6, False, (None, None))]
            for x0, y0, x1, y1 in s["global_boxes"]:
                fr.append(mask[y0:y1, x0:x1].mean())
        fractions[sampler] = np.array(fr)
    assert len(fractions["tissue"]) == 200
    assert fractions["tissue"].min() >= cfg.crops.global_min_tissue
    assert (fractions["random"] < 0.5).mean() > 0.25


def test_same_key_same_tensors(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    key = SampleKey(123, 7, True, ((0.1, 0.3), None))
    a, b = ds[key], ds[key]
    for name in ("global_crops", "local_crops"):
        for x, y in zip(a[name], b[name]):
            assert torch.equal(x, y)
    assert torch.equal(a["masks"], b["masks"])
    c = ds[SampleKey(124, 7, True, ((0.1, 0.3), None))]
    assert not torch.equal(a["global_crops"][0], c["global_crops"][0])


def test_dbt_pair_same_box_neighbouring_slices(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    for pos in range(60):
        s = ds[SampleKey(pos, 6 + pos % 3, True, None)]
        z1, z2 = s["slices"]
        assert 1 <= abs(z1 - z2) <= cfg.data.dbt_max_offset
        assert cfg.data.dbt_edge_slices <= z1 <= 12 - 1 - cfg.data.dbt_edge_slices
        assert cfg.data.dbt_edge_slices <= z2 <= 12 - 1 - cfg.data.dbt_edge_slices
        assert s["global_boxes"][0] == s["global_boxes"][1]
        assert torch.equal(s["patch_tissue"][0], s["patch_tissue"][1])


def test_dbt_crops_come_from_the_drawn_slices(tmp_path, cfg):
    # Constant slices (value = 1000 * (k+1)), no photometric augmentation: the crop reveals its slice.
    z, h, w = 10, 40, 40
    vol = (np.arange(1, z + 1, dtype=np.uint16) * 1000)[:, None, None] * np.ones((1, h, w), np.uint16)
    mask = np.ones((h, w), np.uint8)
    cache = write_cache(tmp_path / "c", [("dbt", vol, mask), ("ffdm", vol[0], mask)])
    cfg.augment.jitter_prob = 0.0
    cfg.augment.gamma_prob = 0.0
    cfg.augment.solarize_prob = 0.0
    ds = PretrainDataset([cache], cfg)
    for pos in range(20):
        s = ds[SampleKey(pos, 0, True, None)]
        for crop, zz in zip(s["global_crops"], s["slices"]):
            value = float(crop.mean()) * 0.25 + 0.5  # undo (x - 0.5) / 0.25
            assert value * 65535 == pytest.approx(1000 * (zz + 1), abs=2)


def test_dbt_slice_pair_thin_volumes():
    rng = np.random.default_rng(0)
    for n in range(2, 8):
        for _ in range(50):
            z, z2 = dbt_slice_pair(n, 2, 2, rng)
            assert 0 <= z < n and 0 <= z2 < n and 1 <= abs(z - z2) <= 2
    assert dbt_slice_pair(1, 2, 2, rng) == (0, 0)
    seen = {dbt_slice_pair(30, 2, 2, rng) for _ in range(2000)}
    assert {abs(a - b) for a, b in seen} == {1, 2}
    assert min(a for a, _ in seen) == 2 and max(a for a, _ in seen) == 27


def test_collate_layout_and_ibot_bookkeeping(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    plan = BatchPlan(ds, cfg)
    keys = plan.batch_keys(0)
    samples = [ds[k] for k in keys]
    batch = collate(samples)
    B = len(keys)
    assert tuple(batch["global_crops"].shape) == (2 * B, 1, 32, 32)
    assert tuple(batch["local_crops"].shape) == (2 * B, 1, 16, 16)
    # DINOv2 order: all crop-1, then all crop-2; locals likewise.
    assert torch.equal(batch["global_crops"][1], samples[1]["global_crops"][0])
    assert torch.equal(batch["global_crops"][B + 1], samples[1]["global_crops"][1])
    assert torch.equal(batch["local_crops"][B + 2], samples[2]["local_crops"][1])
    assert torch.equal(batch["masks"][B + 3], samples[3]["masks"][1])
    masks = batch["masks"]
    assert masks.dtype == torch.bool and tuple(masks.shape) == (2 * B, 16)
    # int(2B * 0.5) crops get a ratio range; each masks int(U(lo, hi) * tissue patches) patches.
    ranges = [k.mask_ranges[c] for c in range(2) for k in keys]
    assert sum(r is not None for r in ranges) == int(2 * B * cfg.ibot.mask_sample_probability)
    for crop_mask, tissue, r in zip(masks, batch["patch_tissue"], ranges):
        n_tissue = int((tissue >= cfg.crops.mask_min_tissue).sum())
        lo, hi = r if r is not None else (0.0, 0.0)
        assert int(lo * n_tissue) <= int(crop_mask.sum()) <= int(hi * n_tissue)
    assert torch.equal(batch["mask_indices_list"], masks.flatten().nonzero().flatten())
    assert int(batch["n_masked_patches"][0]) == int(masks.sum())
    weights = batch["masks_weight"]
    assert weights.shape[0] == int(masks.sum())
    per_crop = masks.sum(1)
    expected = torch.cat([torch.full((int(n),), 1.0 / int(n)) for n in per_crop if n > 0])
    assert torch.allclose(weights, expected)
    assert batch["is_dbt"].tolist() == [k.is_dbt for k in keys]
    assert batch["index"].tolist() == [k.index for k in keys]


def test_masks_follow_the_key_ranges(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    for pos in range(40):
        s = ds[SampleKey(pos, pos % 6, False, ((0.3, 0.4), None))]
        eligible = s["patch_tissue"][0] >= cfg.crops.mask_min_tissue
        n = int(eligible.sum())
        assert int(s["masks"][0].sum()) in range(int(0.3 * n), int(0.4 * n) + 1)
        assert not bool((s["masks"][0] & ~eligible).any())
        assert not bool(s["masks"][1].any())


def test_loader_identical_for_0_and_1_workers(cache, cfg):
    """Through the training loader itself (train.loader.build_loader)."""
    ds = PretrainDataset([cache], cfg)
    plan = BatchPlan(ds, cfg)
    cfg.train.steps = 2
    out = []
    for workers in (0, 1):
        cfg.data.num_workers = workers
        out.append(list(build_loader(ds, plan, cfg)))
    assert len(out[0]) == 2 * int(cfg.train.grad_accum)
    for b0, b1 in zip(*out):
        for name in ("global_crops", "local_crops", "masks", "index", "slices"):
            assert torch.equal(b0[name], b1[name])


def test_sample_rng_is_per_position():
    a = sample_rng(0, 5).random(3)
    assert np.array_equal(a, sample_rng(0, 5).random(3))
    assert not np.array_equal(a, sample_rng(0, 6).random(3))
    assert not np.array_equal(a, sample_rng(1, 5).random(3))


def test_several_caches_and_hflip(tmp_path, cfg):
    c1 = write_cache(tmp_path / "a", [("ffdm", *left_half_breast(seed=1))])
    c2 = write_cache(tmp_path / "b", [("ffdm", *left_half_breast(seed=2)), ("ffdm", *left_half_breast(seed=3))])
    ds = PretrainDataset([c1, c2], cfg)
    assert len(ds) == 3 and ds.item(0).cache_dir == c1 and ds.items[2].cache_dir == c2
    cfg.crops.hflip = True
    flipped = PretrainDataset([c1, c2], cfg)
    assert flipped[1]["global_crops"][0].shape == (1, 32, 32)


def test_bad_caches_name_the_folder(tmp_path, cfg):
    with pytest.raises(UserError, match="nothing-here"):
        PretrainDataset([tmp_path / "nothing-here"], cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="empty"):
        PretrainDataset([empty], cfg)
    skipped = write_cache(tmp_path / "skipped", [("ffdm", *left_half_breast())])
    text = (skipped / "manifest.csv").read_text().replace(",ok,", ",skipped,")
    (skipped / "manifest.csv").write_text(text)
    with pytest.raises(UserError, match="skipped"):
        PretrainDataset([skipped], cfg)
    broken = write_cache(tmp_path / "broken", [("ffdm", *left_half_breast())])
    for f in (broken / "images").rglob("*.npy"):
        f.unlink()
    with pytest.raises(UserError, match="broken"):
        PretrainDataset([broken], cfg)
    with pytest.raises(UserError):
        PretrainDataset([], cfg)


def test_phantom_cache_end_to_end(request, cfg):
    pytest.importorskip("mammodino.data.indexer")
    pytest.importorskip("mammodino.synth.generate")
    cache = request.getfixturevalue("phantom_cache")
    ds = PretrainDataset([cache], cfg)
    plan = BatchPlan(ds, cfg)
    batch = collate([ds[k] for k in plan.batch_keys(0)])
    assert torch.isfinite(batch["global_crops"]).all()
    assert int(batch["is_dbt"].sum()) >= 2
