"""Attention maps: shapes, normalisation, inputs (cache id, .npy, real RSNA DICOM), PNGs."""

import hashlib
import json

import numpy as np
import pytest
import torch

from mammodino.cli import main
from mammodino.errors import UserError
from mammodino.eval.attention import cls_attention, overlay, prepare_dicom, resolve_inputs
from mammodino.models.loading import load_backbone


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_backbone(random_init=True, arch="tiny", patch_size=16)[0]


def test_cls_attention_covers_the_image_and_sums_to_at_most_one(tiny):
    img = np.random.default_rng(0).random((100, 50)).astype(np.float32)
    heads, hw, place = cls_attention(tiny, img, 64)
    assert heads.shape == (3, 4, 2) and hw == (64, 32) and place == (0, 0, 64, 32)
    assert (heads >= 0).all() and heads.sum() <= 3 + 1e-5  # padding patches cropped away


def test_overlay_draws_the_outline():
    img = np.zeros((40, 30), np.float32)
    mask = np.zeros((40, 30), np.uint8)
    mask[5:35, 0:20] = 1
    out = overlay(img, None, mask)
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    assert (out[..., 1] == 255).sum() > 40  # cyan contour pixels
    heat = overlay(img, np.ones((40, 30)), None, alpha=0.5)
    assert heat.max() > 100


def test_inputs_from_cache_id_and_npy(tiny_cache, tmp_path):
    from mammodino.data.cache import open_cache

    first = open_cache(tiny_cache)[0]
    srcs = resolve_inputs([first.id, "P001_R_MLO", str(tiny_cache / first.row["image_file"])], cache=tiny_cache)
    assert [s.name for s in srcs] == [first.id, srcs[1].name, first.id]
    assert np.array_equal(srcs[0].mask, first.breast_mask()) and srcs[0].image.max() <= 1
    with pytest.raises(UserError, match="not an id or stem"):
        resolve_inputs(["nope"], cache=tiny_cache)
    with pytest.raises(UserError, match="--cache"):
        resolve_inputs(["nope"])


def test_attention_on_a_real_rsna_dicom(rsna_dir, tmp_path):
    dcm = rsna_dir / "train_images" / "10011" / "220375232.dcm"
    src = prepare_dicom(dcm)
    name = "file-" + hashlib.sha256(b"220375232.dcm").hexdigest()[:12]
    assert src.name == name  # a hash of the file name: neither file nor folder names an output
    assert max(src.image.shape) == 1024 and src.mask.shape == src.image.shape
    left = src.mask[:, : src.mask.shape[1] // 10].mean()
    right = src.mask[:, -src.mask.shape[1] // 10 :].mean()
    assert left > right  # chest wall turned to the left
    out = tmp_path / "att"
    assert main(["attention", "--random-init", "--arch", "tiny", "--patch-size", "16", str(dcm),
                 "--out", str(out), "--resolution", "128"]) == 0
    assert (out / f"{name}_attention.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / f"{name}_heads.png").exists()
    stats = json.loads((out / "attention_stats.json").read_text())[0]
    assert 0 <= stats["attention_on_tissue"] <= 1 and stats["heads"] == 3
    assert "10011" not in json.dumps(stats)


def test_a_dicom_prepared_for_attention_is_what_index_caches(rsna_dir, tmp_path):
    """One per-image preparation (data/prepare.py): attention on a DICOM sees the cache's pixels."""
    import shutil

    from mammodino.data.cache import read_manifest
    from mammodino.data.indexer import index_folder
    from mammodino.models.preprocess import from_uint16

    dcm = rsna_dir / "train_images" / "10011" / "220375232.dcm"
    (tmp_path / "src").mkdir()
    shutil.copy(dcm, tmp_path / "src" / dcm.name)
    index_folder(tmp_path / "src", tmp_path / "cache", size=1024, workers=1, progress=False, salt="t")
    row = next(r for r in read_manifest(tmp_path / "cache") if r["status"] == "ok")
    cached = np.load(tmp_path / "cache" / row["image_file"])
    mask = np.load(tmp_path / "cache" / row["mask_file"])
    src = prepare_dicom(dcm)
    assert np.array_equal(src.image, from_uint16(cached)) and np.array_equal(src.mask, mask)


def _png_header_only(path, h, w, bit_depth=16):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_a_folder_of_pngs_is_read_image_by_image(tmp_path, capsys):
    import cv2

    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    img = np.zeros((120, 90), np.uint16)
    img[10:110, :60] = 40000
    cv2.imwrite(str(folder / "MRN12345_DOE.png"), img)
    import tifffile

    tifffile.imwrite(folder / "sub" / "b.tif", (img >> 8).astype(np.uint8))
    (folder / "sub" / "c.pgm").write_bytes(b"P5\n90 120\n255\n" + (img >> 8).astype(np.uint8).tobytes())  # mini-MIAS
    (folder / "notes.txt").write_text("a note")  # ignored like index ignores it
    (folder / "junk.png").write_bytes(b"not a png at all")
    _png_header_only(folder / "huge.png", 60000, 60000)  # refused from its header, never decoded
    srcs = resolve_inputs([str(folder)])
    assert len(srcs) == 3 and all(s.name.startswith("file-") and s.image.dtype == np.float32 for s in srcs)
    assert srcs[0].image.max() <= 1 and srcs[0].mask.shape == srcs[0].image.shape  # the mask: segmentation's business
    err = capsys.readouterr().err
    assert "skipped 2 of 5 files" in err and "too large" in err and "not a PNG" in err


def test_attention_given_folders_of_non_images_is_a_clear_error(tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_bytes(b"not dicom" * 20)
    (junk / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (junk / "c.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    with (junk / "d.npy").open("wb") as fh:  # header: 80 GB
        np.lib.format.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False, "shape": (200_000, 200_000)})
        fh.write(b"\0" * 64)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    for folder, what in ((junk, "no readable image among its 4 files"), (empty, "no readable image among its 0 files")):
        rc = main(["attention", "--random-init", "--arch", "tiny", "--patch-size", "16", "--resolution", "32",
                   str(folder), "--out", str(tmp_path / f"out-{folder.name}")])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error:") and what in err and "Traceback" not in err, err
    for single, what in ((junk / "d.npy", "NPY"), (junk / "b.png", "PNG"), (junk / "a.dcm", "DICOM")):
        with pytest.raises(UserError, match=what):
            resolve_inputs([str(single)])
    import os

    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(UserError, match="not a regular file"):  # and does not block on it
        resolve_inputs([str(tmp_path / "fifo.png")])
