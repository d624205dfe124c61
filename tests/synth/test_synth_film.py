"""Film phantoms (`synth --film`): CBIS-DDSM-style Secondary Capture files, their ground
truth, and what `index` makes of them (identity from PatientID, qc on every row, every box that
misses the breast by more than half flagged; subtler cuts are measured by
benchmarks/film_qc.py, not asserted)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pydicom
import pytest

from mammodino.io import uids
from mammodino.io.dicom_reader import read_dicom


@pytest.fixture(scope="module")
def film_set(tmp_path_factory):
    from mammodino.synth.generate import generate_phantoms

    out = tmp_path_factory.mktemp("films")
    generate_phantoms(out, n_ffdm=8, n_dbt=0, seed=0, ffdm_shape=(450, 280), film=True)
    return out


@pytest.fixture(scope="module")
def film_cache(film_set, tmp_path_factory):
    from mammodino.data.indexer import index_folder

    cache = tmp_path_factory.mktemp("film-cache") / "c"
    summary = index_folder(film_set, cache, size=128, workers=1, progress=False)
    return cache, summary


def _labels(folder):
    with (folder / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_films_are_secondary_capture_with_the_view_only_in_patient_id(film_set):
    syntaxes, bits = set(), set()
    for r in _labels(film_set):
        ds = pydicom.dcmread(film_set / r["path"])
        assert ds.SOPClassUID == uids.SECONDARY_CAPTURE and ds.Modality == "MG" and ds.ConversionType == "DF"
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 16
        for tag in ("ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence", "WindowCenter"):
            assert tag not in ds, tag
        side = "LEFT" if r["laterality"] == "L" else "RIGHT"
        assert ds.PatientID.endswith(f"_{r['patient_id']}_{side}_{r['view']}"), ds.PatientID
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        bits.add(int(ds.BitsStored))
        assert int(ds.pixel_array.max()) <= (1 << ds.BitsStored) - 1
    assert syntaxes == {uids.RLE_LOSSLESS, uids.EXPLICIT_LITTLE_ENDIAN} and bits == {12, 16}


def test_rle_and_uncompressed_films_read_alike(film_set, tmp_path):
    """The RLE file decodes to the same display values as the same pixels stored uncompressed."""
    r = next(r for r in _labels(film_set)
             if pydicom.dcmread(film_set / r["path"]).file_meta.TransferSyntaxUID == uids.RLE_LOSSLESS)
    ds = pydicom.dcmread(film_set / r["path"])
    ds.decompress()
    from mammodino.synth.dicom_writer import save_dataset

    plain = save_dataset(ds, tmp_path / "plain.dcm")
    a, b = read_dicom(film_set / r["path"], dtype=np.uint16), read_dicom(plain, dtype=np.uint16)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert (a.meta["laterality"], a.meta["view"]) == (r["laterality"], r["view"])


def test_ground_truth_mask_and_box_agree_and_films_carry_their_quirks(film_set):
    for r in _labels(film_set):
        mask = cv2.imread(str(film_set / r["breast_mask"]), cv2.IMREAD_GRAYSCALE) > 0
        ys, xs = np.nonzero(mask)
        assert r["breast_box"] == f"{xs.min()} {ys.min()} {xs.max() + 1} {ys.max() + 1}"
        ds = pydicom.dcmread(film_set / r["path"])
        img = ds.pixel_array.astype(np.float64) / ((1 << ds.BitsStored) - 1)
        assert mask.shape == img.shape and 0.15 < mask.mean() < 0.75
        background = img[~mask]
        # bright unexposed border or a saturated strip: far brighter than the fog around the breast
        assert np.percentile(background, 99) > 0.8 and np.median(background) < 0.2
        # the breast is against the edge its laterality says (a left breast: chest wall on the left)
        cols = np.nonzero(mask.any(axis=0))[0]
        if r["laterality"] == "L":
            assert cols[0] < 0.05 * mask.shape[1]
        else:
            assert cols[-1] > 0.95 * mask.shape[1]


def test_same_seed_same_bytes(film_set, tmp_path):
    from mammodino.synth.generate import generate_phantoms

    generate_phantoms(tmp_path / "again", n_ffdm=4, n_dbt=0, seed=0, ffdm_shape=(450, 280), film=True)
    for name in ("ffdm/ffdm_000000.dcm", "ffdm/ffdm_000003.dcm", ".truth/ffdm_000002.png"):
        assert (tmp_path / "again" / name).read_bytes() == (film_set / name).read_bytes()


def test_index_reads_films_skips_truth_masks_and_flags_every_wrong_box(film_set, film_cache):
    from mammodino.data.cache import read_manifest, with_sources
    from mammodino.data.cache_geometry import box_iou
    from mammodino.data.qc import parse_box

    cache, summary = film_cache
    labels = {r["path"]: r for r in _labels(film_set)}
    # the .truth/ PNGs are no sources; each lesion's CBIS-DDSM ROI mask and crop are skipped
    lesions = sum(r["lesion"] == "1" for r in _labels(film_set))
    assert lesions > 0 and summary["ok"] == 8 and summary["skipped"] == 2 * lesions
    assert summary["reasons"] == {
        "an annotation, not a whole mammogram (SeriesDescription names a ROI mask image)": lesions,
        "an annotation, not a whole mammogram (SeriesDescription names a cropped image)": lesions}
    assert summary["ignored_by_extension"].get("(hidden folder)") == 1
    rows = with_sources(cache, read_manifest(cache))
    assert sorted(r["source"] for r in rows if r["status"] == "ok") == sorted(labels)
    by_woman = {}
    for row in rows:
        truth = labels[row["source"]]
        assert (row["laterality"], row["view"], row["laterality_source"]) == (truth["laterality"], truth["view"], "tag")
        by_woman.setdefault(truth["patient_id"], set()).add(row["patient_key"])
        assert row["qc"] in ("pass", "suspect")
        iou = box_iou(parse_box(row["breast_box"]), parse_box(truth["breast_box"]))
        if iou < 0.5:  # a strip or the whole film must never pass silently
            assert row["qc"] == "suspect", (row["source"], iou, row["qc_reason"])
    assert all(len(keys) == 1 for keys in by_woman.values()) and len(by_woman) == 2
    assert summary["qc"]["checked"] == 8


def test_synth_cli_film_option(tmp_path, capsys):
    from mammodino.cli import main

    assert main(["synth", str(tmp_path / "f"), "--n", "4", "--film", "--ffdm-size", "300x200", "--workers", "1",
                 "--quiet"]) == 0
    assert len(list((tmp_path / "f" / ".truth").glob("*.png"))) == 4
    ds = pydicom.dcmread(tmp_path / "f" / "ffdm" / "ffdm_000001.dcm", stop_before_pixels=True)
    assert ds.SOPClassUID == uids.SECONDARY_CAPTURE
    # the same folder with other options is refused, nothing written
    assert main(["synth", str(tmp_path / "f"), "--n", "4", "--ffdm-size", "300x200", "--quiet"]) == 2
    assert "film" in capsys.readouterr().err


def test_lesion_roi_mask_and_crop_sit_beside_the_film_as_in_cbis_ddsm(film_set, tmp_path):
    """Same Secondary Capture MG as the film, PatientID with the lesion number; the mask is
    caught by its pixels too when its SeriesDescription is gone."""
    from mammodino.data.indexer import index_folder

    lesion = next(r for r in _labels(film_set) if r["lesion"] == "1")
    stem = lesion["image_id"]
    film = pydicom.dcmread(film_set / lesion["path"], stop_before_pixels=True)
    mask = pydicom.dcmread(film_set / "ffdm" / "rois" / f"{stem}_1_mask.dcm")
    crop = pydicom.dcmread(film_set / "ffdm" / "rois" / f"{stem}_1_crop.dcm")
    for ds, series in ((mask, "ROI mask images"), (crop, "cropped images")):
        assert ds.SeriesDescription == series and ds.SOPClassUID == film.SOPClassUID and ds.Modality == "MG"
        assert ds.PatientID == f"{film.PatientID}_1"
    assert set(np.unique(mask.pixel_array)) == {0, 255} and mask.pixel_array.shape == (film.Rows, film.Columns)
    assert crop.Rows < film.Rows and len(np.unique(crop.pixel_array)) > 100  # real tissue
    del mask.SeriesDescription
    (tmp_path / "src").mkdir()
    mask.save_as(tmp_path / "src" / "mask.dcm")
    index_folder(tmp_path / "src", tmp_path / "cache", size=128, workers=1, progress=False)
    with (tmp_path / "cache" / "manifest.csv").open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "skipped" and row["reason"].startswith("a mask or label map, not a mammogram (2 grey levels")


def test_crooked_films_turn_with_their_truth_and_segment_upright(tmp_path):
    """``film_tilt``: each film laid 1-8 degrees crooked on a dark bed; the truth mask, its box
    and the lesion box turn with it, and the production segmentation still finds the breast."""
    from mammodino.data.cache_geometry import box_iou
    from mammodino.synth.generate import generate_phantoms
    from mammodino.tissue.deskew import scan_tilt
    from mammodino.tissue.segmentation import breast_box, downsample, segment

    out = tmp_path / "crooked"
    generate_phantoms(out, n_ffdm=8, n_dbt=0, seed=0, ffdm_shape=(450, 280), film=True, film_tilt=8, workers=1)
    tilted = 0
    for r in _labels(out):
        img = read_dicom(out / r["path"]).reference_plane()
        truth = cv2.imread(str(out / r["breast_mask"]), cv2.IMREAD_GRAYSCALE) > 0
        assert truth.shape == img.shape and img.shape != (450, 280)  # the canvas holds the turned film
        assert " ".join(str(v) for v in breast_box(truth)) == r["breast_box"]
        tilted += scan_tilt(downsample(img)[0]) is not None
        seg_box = segment(img, view=r["view"]).box()
        assert box_iou(seg_box, breast_box(truth)) >= 0.85, (r["image_id"], seg_box, r["breast_box"])
        if r["lesion"] == "1":
            x0, y0, x1, y1 = (int(v) for v in r["lesion_box"].split())
            assert truth[(y0 + y1) // 2, (x0 + x1) // 2]  # the turned lesion box sits on the breast
            assert seg_box[0] <= (x0 + x1) / 2 <= seg_box[2] and seg_box[1] <= (y0 + y1) / 2 <= seg_box[3]
    assert tilted == 8


def test_film_tilt_needs_film_and_a_sane_angle(tmp_path):
    from mammodino.errors import UserError
    from mammodino.synth.generate import generate_phantoms

    for kwargs in ({"film_tilt": 5}, {"film": True, "film_tilt": 20}, {"film": True, "film_tilt": 0.5}):
        with pytest.raises(UserError, match="film_tilt"):
            generate_phantoms(tmp_path / "x", n_ffdm=4, n_dbt=0, **kwargs)
    assert not (tmp_path / "x").exists()


def test_a_film_set_is_reused_with_its_lesion_annotations(film_set):
    """The same call on its own complete output reuses it: the ROI masks and crops it wrote
    beside the films are its own files (they were once taken for a stranger's)."""
    from mammodino.synth.generate import generate_phantoms

    assert list((film_set / "ffdm" / "rois").glob("*.dcm"))
    before = {p: p.stat().st_mtime_ns for p in film_set.rglob("*") if p.is_file()}
    generate_phantoms(film_set, n_ffdm=8, n_dbt=0, seed=0, ffdm_shape=(450, 280), film=True)
    assert {p: p.stat().st_mtime_ns for p in film_set.rglob("*") if p.is_file()} == before
