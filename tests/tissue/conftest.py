"""The RSNA images with hand-drawn breast boxes, decoded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

BOXED = [
    "10006@1864590858", "10006@1874946579", "10006@462822612",
    "10011@1031443799", "10011@220375232", "10011@270344397", "10011@541722628",
]


@pytest.fixture(scope="session")
def rsna_boxed(rsna_dir):
    """{name: (uint16 image, MammoImage.meta, reference box (x0, y0, x1, y1) in pixels)}.
    JPEG 2000 decoding costs 0.3-1 s per file: every file is decoded exactly once."""
    from mammodino.io.dicom_reader import read_dicom

    out = {}
    for name in BOXED:
        patient, image = name.split("@")
        path = rsna_dir / "train_images" / patient / f"{image}.dcm"
        box_file = rsna_dir / "breast_boxes" / f"{name}.txt"
        if not path.exists() or not box_file.exists():
            pytest.skip(f"RSNA file missing: {path} or {box_file}")
        img = read_dicom(path, dtype="uint16")
        h, w = img.pixels.shape
        _, cx, cy, bw, bh = (float(v) for v in box_file.read_text().split())
        ref = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
        out[name] = (img.pixels, img.meta, ref)
    return out


@pytest.fixture(scope="session")
def rsna_views(rsna_dir):
    """{name: view} from train.csv (the RSNA DICOMs carry no ViewPosition)."""
    import csv

    with open(rsna_dir / "train.csv", newline="") as f:
        return {f"{r['patient_id']}@{r['image_id']}": r["view"] for r in csv.DictReader(f)}


@pytest.fixture(scope="session")
def ddsm_results(shared_data):
    """Per-film IoU of the production segment() on the 66 DDSM films (benchmark code path):
    list of dicts with breast / no_pec IoU and the held-out flag."""
    import sys

    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from segmentation import run_ddsm

    return run_ddsm(root)
