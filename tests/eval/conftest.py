"""Fixtures of the evaluation tests: a hand-written cache (no indexer needed) and a
synthetic feature set with known structure."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mammodino.data.cache import MANIFEST_COLUMNS, image_relpath, mask_relpath


def write_tiny_cache(out: Path, n_patients: int = 4, dbt: int = 1, seed: int = 0, size=(96, 64), slices: int = 5) -> Path:
    """A cache in the manifest layout: per patient L/R x CC/MLO FFDM (a bright disc on the
    left for 'lesion' breasts), plus ``dbt`` volumes; patient keys look like hashes."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    h, w = size

    def add(stem, kind, pk, lat, view, arr, source):
        image_id = f"{len(rows):02x}{rng.integers(0, 2**40):014x}"[:16]
        (out / image_relpath(image_id)).parent.mkdir(parents=True, exist_ok=True)
        (out / mask_relpath(image_id)).parent.mkdir(parents=True, exist_ok=True)
        np.save(out / image_relpath(image_id), arr)
        mask = (arr if arr.ndim == 2 else arr[arr.shape[0] // 2]) > 1000
        np.save(out / mask_relpath(image_id), mask.astype(np.uint8))
        row = {c: "" for c in MANIFEST_COLUMNS}
        row.update(id=image_id, source=source, stem=stem, kind=kind, slices=arr.shape[0] if arr.ndim == 3 else 1,
                   laterality=lat, view=view, patient_key=pk, height=h, width=w, cache_height=h, cache_width=w,
                   image_file=image_relpath(image_id), mask_file=mask_relpath(image_id), status="ok", flipped=0,
                   tissue_fraction=0.5)
        rows.append(row)

    yy, xx = np.mgrid[0:h, 0:w]
    for p in range(n_patients):
        pk = f"{p:04d}" + "ab" * 6
        for lat in "LR":
            for view in ("CC", "MLO"):
                img = np.clip(rng.normal(20000, 3000, (h, w)), 0, 65535)
                img[:, w // 2 :] = 0
                if p % 2 == 0 and lat == "L":
                    img[(yy - h // 2) ** 2 + (xx - 10) ** 2 < 64] = 60000
                add(f"P{p:03d}_{lat}_{view}", "ffdm", pk, lat, view, img.astype(np.uint16), f"PAT{p:03d}/P{p:03d}_{lat}_{view}.dcm")
    for d in range(dbt):
        vol = np.clip(rng.normal(20000, 3000, (slices, h, w)), 0, 65535).astype(np.uint16)
        add(f"DBT{d:03d}", "dbt", f"{99 - d:04d}" + "cd" * 6, "L", "CC", vol, f"PATD{d}/DBT{d:03d}.dcm")
    rows.append({**{c: "" for c in MANIFEST_COLUMNS}, "id": "ffffffffffffffff", "source": "bad.dcm", "stem": "bad",
                 "status": "skipped", "reason": "not an image"})
    with (out / "manifest.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        wr.writeheader()
        wr.writerows(rows)
    return out


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return write_tiny_cache(tmp_path_factory.mktemp("tiny_cache"))


def synthetic_features(n_patients=120, dim=16, shift=3.0, seed=0, views=("CC", "MLO"), positive_rate=0.4):
    """(FeatureSet, rows) with per-breast binary labels; feature 0 carries the label when
    ``shift`` > 0 (pure noise when 0). Stems S<patient>_<lat>_<view>."""
    from mammodino.eval.features import FeatureSet

    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        sick = rng.random() < positive_rate
        for lat in "LR":
            for v in views:
                rows.append((f"S{p:04d}_{lat}_{v}", f"patient-{p:04d}", lat, v, int(sick and lat == "L")))
    n = len(rows)
    y = np.array([r[4] for r in rows])
    X = rng.normal(0, 1, (n, dim))
    X[:, 0] += shift * y
    fs = FeatureSet(
        features=X.astype(np.float32),
        id=np.array([f"{i:016x}" for i in range(n)]),
        patient_key=np.array([f"key{r[1][-4:]}" for r in rows]),
        laterality=np.array([r[2] for r in rows]),
        view=np.array([r[3] for r in rows]),
        kind=np.array(["ffdm"] * n),
        stem=np.array([r[0] for r in rows]),
        slice=np.full(n, -1),
        n_slices=np.ones(n, dtype=np.int64),
    )
    return fs, rows


def write_label_csv(path: Path, rows, extra_rows=()) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "patient"])
        for stem, patient, _lat, _v, lab in rows:
            w.writerow([f"{stem}.png", lab, patient])
        for r in extra_rows:
            w.writerow(r)
    return path
