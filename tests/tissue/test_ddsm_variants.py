"""The real DDSM films as other digitisers would have left them (benchmarks/segmentation_variants.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from mammodino.synth.film_variants import SAME_BREAST, TILTED, TILTED_CORNERS_CUT, VARIANTS, variant


@pytest.fixture(scope="module")
def bench(shared_data):
    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import segmentation_variants

    return segmentation_variants, root


def test_variants_transform_film_and_labels_alike():
    img = np.zeros((120, 60), np.uint8)
    img[20:100, :30] = 200
    lab = np.full(img.shape, 64, np.uint8)
    lab[20:100, :30] = 128
    for name in VARIANTS:
        out, labels = variant(name, img, lab)
        assert out.shape == labels.shape, name
    flipped, flipped_lab = variant("mirrored", img, lab)
    assert flipped[50, -1] == 200 and flipped_lab[50, -1] == 128
    dark, _ = variant("darker curve (gamma 2.2)", img, lab)
    assert dark[0, 0] == 0 and dark[50, 0] == round(255 * (200 / 255) ** 2.2)
    with pytest.raises(KeyError, match="unknown film variant 'sepia'"):
        variant("sepia", img, lab)


def test_the_box_holds_the_breast_on_every_same_breast_variant(bench):
    mod, root = bench
    results = mod.run(root, SAME_BREAST, every=3)
    wrong = {v: [r["name"] for r in rows if r["wrong"]] for v, rows in results.items()}
    assert not any(wrong.values()), mod.report(results, per_image=True)


def test_a_crooked_scan_is_segmented_upright(bench):
    """Films laid 3-8 degrees crooked on a dark or light scanner bed, with or without their
    bright border: before the deskew step 9-65 of 66 boxes per variant were wrong (the whole
    scan, or 0.06 of the fibroglandular tissue left inside on the light bed). Now every box
    holds the tissue where lesions arise, and, where the scan holds the whole film, at most
    one per variant misses the annotated box (IoU 0.79-0.80: the turned-back skin line)."""
    mod, root = bench
    results = mod.run(root, TILTED, every=3)
    report = mod.report(results, per_image=True)
    for v, rows in results.items():
        assert min(r["tissue_in_box"] for r in rows) >= 0.95, report
        assert min(r["fgt_in_box"] for r in rows) >= 0.97, report
        if v not in TILTED_CORNERS_CUT:
            assert np.mean([r["box_iou"] for r in rows]) >= 0.9, report
            assert sum(r["wrong"] for r in rows) <= 1, report


def test_a_darker_curve_keeps_the_dim_periphery(bench):
    """A darker transfer curve crowds the periphery towards the air; the step shrinks with it
    (tissue.transfer_curve). On these 22 films the plain 10 % step left 7 wrong boxes, tissue in
    box mean 0.958 and fibroglandular min 0.908; now 4, 0.970 and 0.980."""
    mod, root = bench
    rows = mod.run(root, ["darker curve (gamma 2.2)"], every=3)["darker curve (gamma 2.2)"]
    report = mod.report({"darker curve (gamma 2.2)": rows}, per_image=True)
    assert np.mean([r["tissue_in_box"] for r in rows]) >= 0.965, report
    assert min(r["fgt_in_box"] for r in rows) >= 0.97, report
    assert sum(r["wrong"] for r in rows) <= 4, report


@pytest.mark.xfail(strict=True, reason="known weakness: on a darker transfer curve (gamma 2.2) a few dense or "
                   "grey-air films still lose part of the dim periphery (11 of 66 boxes hold < 0.95 of the tissue or "
                   "miss the annotated box, B_3606 the most: 0.844) and QC passes them")
def test_the_box_holds_the_breast_on_a_darker_curve(bench):
    mod, root = bench
    results = mod.run(root, ["darker curve (gamma 2.2)"], every=3)
    assert not any(r["wrong"] for r in results["darker curve (gamma 2.2)"]), mod.report(results, per_image=True)
