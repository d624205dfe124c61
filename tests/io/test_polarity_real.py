"""Polarity of files without a photometric tag, on real images: a detector image saved air
white (a MONOCHROME1 file written to PNG without its inversion) is turned back; a real film
in a bright unexposed frame keeps its polarity (``image_reader._looks_inverted``)."""

import cv2
import numpy as np
import pytest

from mammodino.data.cache_geometry import box_iou
from mammodino.io.image_reader import read_image
from mammodino.synth.film_variants import variant
from mammodino.tissue.segmentation import segment


def _films(shared_data, every=6):
    films = sorted((shared_data / "ddsm_tissue" / "train_valid" / "fgt_seg").glob("*.png"))[::every]
    if not films:
        pytest.skip("no DDSM films under ddsm_tissue/train_valid/fgt_seg")
    return [(f, f.parent.parent / "fgt_seg_labels" / f"{f.stem}_LI.png") for f in films]


def test_rsna_saved_air_white_reads_tissue_bright_with_the_same_box(rsna_boxed, rsna_views, tmp_path):
    """All 7 boxed RSNA images as 16-bit PNGs, air white: read inverted, same box as the DICOM.
    Before the texture test, 4 of the 11 RSNA images were left air white (their centre is
    mostly air), and one of those got a wrong box that passed QC."""
    for name, (pixels, _, _) in rsna_boxed.items():
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), (65535 - pixels).astype(np.uint16))
        img = read_image(path, dtype="uint16")
        assert img.meta["inverted"] is True, name
        box = segment(img.pixels, view=rsna_views[name]).box()
        assert box_iou(box, segment(pixels, view=rsna_views[name]).box()) > 0.98, name


def test_real_films_in_a_bright_frame_keep_their_polarity(shared_data, tmp_path):
    """Unexposed film on all four sides is the commonest grey level: 26 of the 66 DDSM films
    in such a frame were read inverted before the film-border test."""
    for film, labels in _films(shared_data, every=3):
        framed, _ = variant("bright frame", cv2.imread(str(film), cv2.IMREAD_GRAYSCALE),
                            cv2.imread(str(labels), cv2.IMREAD_GRAYSCALE))
        path = tmp_path / film.name
        cv2.imwrite(str(path), framed)
        assert read_image(path).meta["inverted"] is False, film.name


def test_real_films_saved_air_white_are_turned_back(shared_data, tmp_path):
    found = []
    for film, _ in _films(shared_data):
        path = tmp_path / film.name
        cv2.imwrite(str(path), 255 - cv2.imread(str(film), cv2.IMREAD_GRAYSCALE))
        found.append(read_image(path).meta["inverted"])
    assert np.mean(found) >= 0.9, found  # measured 65 of 66 (one centre-dark fatty film missed)


def test_a_framed_film_stored_as_optical_density_is_turned_back(shared_data, tmp_path):
    """Stored as optical density, a framed film has its unexposed border black and its air
    white: judged inside the black whole-side lines (before: 0 of 66 found)."""
    found = []
    for film, labels in _films(shared_data):
        framed, _ = variant("bright frame", cv2.imread(str(film), cv2.IMREAD_GRAYSCALE),
                            cv2.imread(str(labels), cv2.IMREAD_GRAYSCALE))
        path = tmp_path / film.name
        cv2.imwrite(str(path), 255 - framed)
        found.append(read_image(path).meta["inverted"])
    assert np.mean(found) >= 0.9, found  # measured 65 of 66
