"""The crop preview grid (Python and CLI)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammodino.cli import main
from mammodino.config import load_config
from support.array_cache import write_array_cache
from mammodino.data.dataset import PretrainDataset
from mammodino.data.preview import GAP, GREEN, RED, YELLOW, preview_keys, render_preview, save_preview


def write_cache(out: Path, entries) -> Path:
    """A cache folder in the cache.py layout; entries are (kind, image, mask)."""
    return write_array_cache(out, [dict(id=f"{i:02x}{'cd' * 7}", stem=str(i), kind=kind, image=image, mask=mask)
                                   for i, (kind, image, mask) in enumerate(entries)])


def breast(h=160, w=120, z=None, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (0, h // 2), (int(w * 0.6), int(h * 0.45)), 0, -90, 90, 1, -1)
    shape = (h, w) if z is None else (z, h, w)
    image = (rng.random(shape) * 8000).astype(np.uint16)
    image[..., mask.astype(bool)] += 40000
    return image, mask


@pytest.fixture()
def cache(tmp_path):
    entries = [("ffdm", *breast(seed=s)) for s in range(4)] + [("dbt", *breast(z=9, seed=9))]
    return write_cache(tmp_path / "cache", entries)


@pytest.fixture()
def cfg():
    return load_config("cpu-tiny", ["crops.global_crop_size=64", "crops.local_crop_size=32", "data.num_workers=0"])


def colour_pixels(img, bgr, tol=10):
    return int((np.abs(img.astype(int) - np.array(bgr)).max(axis=2) <= tol).sum())


def test_save_preview_writes_a_grid(cache, cfg, tmp_path):
    ds = PretrainDataset([cache], cfg)
    path = save_preview(ds, tmp_path / "sub" / "grid.png", n=4, row_height=96)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] == 24 + 4 * (GAP + 96)
    assert colour_pixels(img, GREEN) > 50 and colour_pixels(img, YELLOW) > 50
    assert not list(path.parent.glob("*.tmp.png"))


def test_preview_keys_follow_training_batch(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    keys = preview_keys(ds, 4)
    assert sum(k.is_dbt for k in keys) == 2  # at least 2 DBT when dbt_fraction > 0
    assert sum(r is not None for k in keys for r in k.mask_ranges) == 4  # half of 8 global crops


def test_masked_patches_are_tinted(cache, cfg):
    ds = PretrainDataset([cache], cfg)
    from mammodino.data.batch_plan import SampleKey

    keys = [SampleKey(0, 0, False, ((0.5, 0.5), (0.5, 0.5)))]
    masked = render_preview(ds, keys, row_height=96)
    plain = render_preview(ds, [SampleKey(0, 0, False, (None, None))], row_height=96)
    red = lambda im: int(((im[..., 2].astype(int) - im[..., 1]) > 60).sum())  # noqa: E731
    assert red(masked) > red(plain) + 200


def test_cli_preview(cache, tmp_path, capsys):
    out = tmp_path / "cli.png"
    rc = main(["preview", str(cache), "--out", str(out), "--n", "3", "--seed", "2",
               "crops.global_crop_size=64", "crops.local_crop_size=32", "crops.sampler=random"])
    assert rc == 0 and cv2.imread(str(out)) is not None
    assert "sampler random" in capsys.readouterr().out
    assert main(["preview", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["preview", str(cache), "--out", str(tmp_path / "cli2.png"), "crops.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
