"""Shared fixtures: the real data beside the checkout, and small phantom datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MAMMODINO_SHARED_DATA to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def rsna_dir(shared_data) -> Path:
    return _need(shared_data / "rsna")


@pytest.fixture(scope="session")
def dicom_headers_dir(shared_data) -> Path:
    return _need(shared_data / "dicom_headers")


@pytest.fixture(scope="session")
def label_tables_dir(shared_data) -> Path:
    return _need(shared_data / "label_tables")


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """12 FFDM images (3 patients x 2 sides x CC/MLO) and 2 DBT volumes, as DICOM + labels.csv."""
    from mammodino.synth.generate import generate_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(out, n_ffdm=12, n_dbt=2, seed=0)
    return out


@pytest.fixture(scope="session")
def phantom_cache(phantom_dir, tmp_path_factory) -> Path:
    """``phantom_dir`` indexed at a long side of 256."""
    from mammodino.data.indexer import index_folder

    out = tmp_path_factory.mktemp("phantom_cache")
    index_folder(phantom_dir, out, size=256, workers=1, progress=False)
    return out


def _rsna_boxed_names() -> list[str]:
    """The boxed RSNA images, as the segmentation benchmark lists them (one list for both)."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from segmentation import RSNA_BOXED

    return list(RSNA_BOXED)


@pytest.fixture(scope="session")
def rsna_boxed(rsna_dir):
    """{name: (uint16 image, MammoImage.meta, reference box (x0, y0, x1, y1) in pixels)}.
    JPEG 2000 decoding costs 0.3-1 s per file: every file is decoded exactly once."""
    from mammodino.io.dicom_reader import read_dicom

    out = {}
    for name in _rsna_boxed_names():
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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on 2 shared cores: one thread per test is 10x faster than two fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
