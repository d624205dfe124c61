"""A film laid crooked on the scanner: its tilt read from its straight edges, the film
segmented upright and its mask turned back (tissue.deskew). Film phantoms here; the 66 real
DDSM films so tilted are in test_ddsm_variants.py."""

from __future__ import annotations

import numpy as np
import pytest

from mammodino.data.cache_geometry import box_iou, mask_iou
from mammodino.io.dicom_reader import read_dicom
from mammodino.synth.film_variants import _tilted
from mammodino.synth.generate import generate_phantoms, read_labels
from mammodino.tissue.deskew import scan_tilt, upright
from mammodino.tissue.segmentation import breast_box, downsample, segment


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """12 film phantoms (600 x 360, 8-bit as a film scan's grey levels), with their truth masks."""
    import cv2

    out = generate_phantoms(tmp_path_factory.mktemp("films"), n_ffdm=12, n_dbt=0, seed=2, ffdm_shape=(600, 360),
                            film=True, workers=1).parent
    rows = []
    for r in read_labels(out / "labels.csv"):
        img = read_dicom(out / r["path"]).reference_plane().astype(np.float64)
        as8 = np.round(255 * (img - img.min()) / max(1.0, np.ptp(img))).astype(np.uint8)
        truth = cv2.imread(str(out / r["breast_mask"]), cv2.IMREAD_GRAYSCALE) > 0
        labels = np.where(truth, 128, 64).astype(np.uint8)  # DDSM-style labels for the variants
        rows.append((r["image_id"], r["view"], as8, labels))
    return rows


def _unit(img: np.ndarray) -> np.ndarray:
    return downsample(img)[0]


@pytest.mark.parametrize("degrees,bed,framed", [(3.0, 0, True), (-4.0, 0, True), (-5.0, 235, False),
                                                (8.0, 0, False), (1.5, 0, False), (-11.0, 235, False)])
def test_the_tilt_is_read_from_the_films_edges(films, degrees, bed, framed):
    """Read within 0.3 degrees on every film; at 1.5 degrees on a dark bed without a border
    (the film's dim air against the bed: a weak edge) on most, where an unread tilt this
    small leaves the axis-aligned tests holding anyway."""
    found = {}
    for name, _, img, lab in films:
        tilted, _ = _tilted(degrees, bed, framed)(img, lab)
        found[name] = scan_tilt(_unit(tilted))
    read = {k: v for k, v in found.items() if v is not None}
    assert all(abs(v - degrees) <= 0.3 for v in read.values()), found
    assert len(read) >= (9 if (degrees, bed, framed) == (1.5, 0, False) else len(films)), found


def test_an_upright_film_is_left_as_it_is(films):
    for name, _, img, lab in films:
        assert scan_tilt(_unit(img)) is None, name
        assert scan_tilt(_unit(_tilted(0.4, 0, True)(img, lab)[0])) is None, name  # below 1 degree


def test_upright_detector_phantoms_have_no_tilt(phantom_dir):
    for r in read_labels(phantom_dir / "labels.csv"):
        assert scan_tilt(_unit(read_dicom(phantom_dir / r["path"]).reference_plane())) is None, r["image_id"]


def test_turning_upright_and_back_keeps_a_mask():
    mask = np.zeros((512, 300), np.uint8)
    mask[80:400, :170] = 1
    turn = upright(mask.shape, 6.0)
    assert turn.canvas[0] > 300 and turn.canvas[1] > 512  # the whole image fits the canvas
    back = turn.back((turn.image(mask.astype(np.float32)) > 0.5).astype(np.uint8))
    assert back.shape == mask.shape and mask_iou(back, mask) > 0.98


@pytest.mark.parametrize("degrees,bed,framed", [(3.0, 0, True), (-5.0, 235, False), (8.0, 0, False)])
def test_a_crooked_film_gets_its_breast_box(films, degrees, bed, framed):
    """Without the upright pass these boxes were the whole scan (dark bed, bright border) or
    lost the breast to the bed's bright corners (light bed)."""
    for name, view, img, lab in films:
        tilted, labels = _tilted(degrees, bed, framed)(img, lab)
        seg = segment(tilted, view=view)
        truth = breast_box(labels != 64)
        assert box_iou(seg.box(), truth) >= 0.85, (name, seg.box(), truth)
        assert seg.full_mask().shape == tilted.shape
        picture = seg.picture_box()  # the bed framing the upright film: the box around the film
        if picture is not None:
            x0, y0, x1, y1 = seg.box()
            assert picture[0] <= x0 and picture[1] <= y0 and picture[2] >= x1 and picture[3] >= y1, (name, picture)
