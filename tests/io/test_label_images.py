"""Masks, label maps and lesion crops beside the mammograms: refused with a reason, while real
films, real detector images and our phantoms pass (``mammodino.io.label_images``)."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from mammodino.data.indexer import index_folder
from mammodino.errors import SkipFile
from mammodino.io.dicom_reader import read_dicom
from mammodino.io.image_reader import read_image
from mammodino.io.label_images import annotation_series_reason, label_image_reason
from support.dicom_files import write_mammo_dicom


def _ddsm(shared_data: Path) -> list[tuple[Path, Path]]:
    root = shared_data / "ddsm_tissue"
    films = sorted((root / "train_valid" / "fgt_seg").glob("*.png"))[::6]
    if not films:
        pytest.skip(f"DDSM films not found under {root}")
    return [(f, f.parent.parent / "fgt_seg_labels" / f"{f.stem}_LI.png") for f in films]


def test_real_ddsm_label_maps_are_refused_and_their_films_are_not(shared_data):
    for film, labels in _ddsm(shared_data):
        assert label_image_reason(read_image(film, dtype="uint16").pixels) is None, film.name
        reason = label_image_reason(read_image(labels, dtype="uint16").pixels)
        assert reason is not None and "(4 grey levels" in reason, (labels.name, reason)


def test_a_jpeg_copy_of_a_label_map_is_still_a_label_map(shared_data, tmp_path):
    """JPEG rings around each region's edge: many levels, but nearly every pixel on a few."""
    _, labels = _ddsm(shared_data)[0]
    path = tmp_path / "mask.jpg"
    cv2.imwrite(str(path), cv2.imread(str(labels), cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_JPEG_QUALITY, 90])
    pixels = read_image(path, dtype="uint16").pixels
    assert len(np.unique(pixels)) > 16  # the ringing is there
    assert label_image_reason(pixels) is not None


def test_a_bright_spot_on_a_low_contrast_film_is_not_a_label_map(shared_data):
    """A mass, clip or implant stretching the grey range of a fatty breast: over the whole
    range the tissue falls in a few bins (0.99 here; a demo phantom was skipped so), over
    the range up to the 95th percentile it does not."""
    for film, _ in _ddsm(shared_data):
        img = cv2.imread(str(film), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        h, w = img.shape
        yy, xx = np.mgrid[:h, :w]
        low = (img * 0.12 * 256 + 2560).astype(np.uint16)
        low[((yy - h / 2) / 25) ** 2 + ((xx - w * 0.3) / 25) ** 2 <= 1] = 60000  # the bright spot
        assert label_image_reason(low) is None, film.name
        implant = cv2.imread(str(film), cv2.IMREAD_GRAYSCALE)
        implant[((yy - h * 0.45) / (h * 0.22)) ** 2 + ((xx - w * 0.3) / (w * 0.25)) ** 2 <= 1] = 255
        assert label_image_reason(implant) is None, film.name


def test_a_binary_roi_mask_is_refused():
    mask = np.zeros((400, 300), np.uint16)
    mask[120:200, 80:170] = 65535
    assert "(2 grey levels" in label_image_reason(mask)


def test_real_detector_images_and_phantoms_are_mammograms(rsna_dir, phantom_dir):
    for path in sorted(rsna_dir.glob("train_images/10011/*.dcm"))[:2]:
        assert label_image_reason(read_dicom(path, dtype="uint16").pixels) is None, path.name
    for path in sorted(phantom_dir.rglob("*.dcm")):
        assert label_image_reason(read_dicom(path, dtype="uint16").pixels) is None, path.name


@pytest.mark.parametrize("text", ["ROI mask images", "cropped images", "Breast mask", "SEGMENTATION"])
def test_annotation_series_descriptions(text):
    assert annotation_series_reason(text).startswith("an annotation, not a whole mammogram")
    assert "ROI mask" in annotation_series_reason("ROI mask images")


@pytest.mark.parametrize("text", ["full mammogram images", "L MLO", "R CC Tomo", "", None])
def test_image_series_descriptions(text):
    assert annotation_series_reason(text) is None


def test_a_cbis_ddsm_roi_mask_dicom_is_refused_from_its_header(tmp_path):
    """CBIS-DDSM's masks and crops are MG Secondary Captures like the full images: only the
    SeriesDescription tells them apart, and the crop is real tissue (many grey levels)."""
    rng = np.random.default_rng(0)
    path = write_mammo_dicom(tmp_path / "crop.dcm", rng.integers(0, 4096, (64, 64)).astype(np.uint16))
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = "cropped images"
    ds.save_as(path)
    with pytest.raises(SkipFile, match="an annotation, not a whole mammogram"):
        read_dicom(path)


def test_index_skips_the_label_maps_beside_the_films(shared_data, tmp_path):
    """A DDSM-style tree (films and their label maps in sibling folders): the films are
    indexed, each label map is skipped with its reason, and the run goes on."""
    src = tmp_path / "ddsm"
    for film, labels in _ddsm(shared_data)[:2]:
        for path, folder in ((film, "fgt_seg"), (labels, "fgt_seg_labels")):
            (src / folder).mkdir(parents=True, exist_ok=True)
            (src / folder / path.name).write_bytes(path.read_bytes())
    index_folder(src, tmp_path / "cache", size=256, workers=1, progress=False)
    with open(tmp_path / "cache" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2, rows
    assert all(r["reason"].startswith("a mask or label map, not a mammogram (4 grey levels;") for r in skipped)
    assert sum(r["status"] == "ok" for r in rows) == 2, rows


def test_a_fatty_breast_whose_tissue_spans_a_dozen_grey_levels_is_a_mammogram(shared_data):
    """Processed FFDM of a fatty breast as 8-bit PNG (INbreast: 3 of 410 CC views, one with a
    mass, were skipped as masks): the tissue within ~12 grey levels, a few bright specks
    stretching the range, black air. Its bins look like a label map's, its texture does not;
    a label map's regions stay flat, as PNG or JPEG."""
    rng = np.random.default_rng(0)
    for film, labels in _ddsm(shared_data):
        img = cv2.imread(str(film), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        lab = cv2.imread(str(labels), cv2.IMREAD_GRAYSCALE)
        breast = lab != 64
        quantum = rng.normal(0.0, 1.0, img.shape)  # a detector's noise, ~1 grey level (INbreast: no flat 3 x 3 at all)
        narrow = np.where(breast, 105 + (img - np.median(img[breast])) * 0.1 + quantum, 0)
        narrow[::97, ::89] = np.where(breast[::97, ::89], 250, 0)  # calcifications, vessels
        narrow = np.clip(narrow, 0, 255).astype(np.uint8)
        assert label_image_reason(narrow) is None, film.name
        for q in (90, 50):
            ok, buf = cv2.imencode(".jpg", lab, [cv2.IMWRITE_JPEG_QUALITY, q])
            assert label_image_reason(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)) is not None, (labels.name, q)
