"""Helpers shared by the evaluation tests (imported as ``eval_helpers``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mammodino.data.cache import MANIFEST_COLUMNS, image_relpath, mask_relpath


def write_tiny_cache(out: Path, n_patients: int = 8, dbt: int = 1, seed: int = 0, size=(96, 64), slices: int = 5) -> Path:
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


CBIS_MASS = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
    "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\n"
    "P_00001,3,LEFT,CC,1,mass,IRREGULAR-ARCHITECTURAL_DISTORTION,SPICULATED,4,MALIGNANT,4,"
    "Mass-Training_P_00001_LEFT_CC/1.3.6.1.4.1.9590.100.1.2.4221/1.3.6.1.4.1.9590.100.1.2.3423/000000.dcm,x,y\n"
    "P_00004,3,LEFT,MLO,1,mass,ARCHITECTURAL_DISTORTION,ILL_DEFINED,4,BENIGN,3,"
    "Mass-Training_P_00004_LEFT_MLO/1.3.6.1.4.1.9590.100.1.2.1/1.3.6.1.4.1.9590.100.1.2.2/000000.dcm,x,y\n"
    "P_00004,3,LEFT,MLO,2,mass,OVAL,CIRCUMSCRIBED,4,MALIGNANT,3,"
    "Mass-Training_P_00004_LEFT_MLO/1.3.6.1.4.1.9590.100.1.2.1/1.3.6.1.4.1.9590.100.1.2.2/000000.dcm,x,y\n"
)
CBIS_CALC = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,calc type,"
    "calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\n"
    "P_00038,2,LEFT,CC,1,calcification,PUNCTATE-PLEOMORPHIC,CLUSTERED,4,BENIGN_WITHOUT_CALLBACK,2,"
    "Calc-Test_P_00038_LEFT_CC/1.3.6.1.4.1.9590.100.1.2.5/1.3.6.1.4.1.9590.100.1.2.6/000000.dcm,x,y\n"
    "P_00039,0,RIGHT,CC,1,calcification,AMORPHOUS,SEGMENTAL,4,MALIGNANT,3,"
    "Calc-Test_P_00039_RIGHT_CC/1.3.6.1.4.1.9590.100.1.2.7/1.3.6.1.4.1.9590.100.1.2.8/000000.dcm,x,y\n"
)


def write_tiny_labels(path: Path, n_patients: int = 8, dbt: int = 1) -> Path:
    """labels.csv in the phantom format for :func:`write_tiny_cache` (lesion = even patient, left)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "path", "patient_id", "laterality", "view", "kind", "density", "lesion",
                    "lesion_type", "lesion_box", "lesion_slices"])
        for p in range(n_patients):
            for lat in "LR":
                for view in ("CC", "MLO"):
                    les = int(p % 2 == 0 and lat == "L")
                    w.writerow([f"P{p:03d}_{lat}_{view}", f"ffdm/P{p:03d}_{lat}_{view}.dcm", f"PAT{p:03d}", lat, view,
                                "ffdm", "ABCD"[p % 4], les, "mass" if les else "none", "1 2 3 4" if les else "", ""])
        for d in range(dbt):
            w.writerow([f"DBT{d:03d}", f"dbt/DBT{d:03d}.dcm", f"PATD{d}", "L", "CC", "dbt", "B", 1, "mass",
                        "1 2 3 4", "1 2"])
    return path
