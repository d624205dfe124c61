"""A small labelled cache for the fine-tuning tests (numpy only, no indexer), and the micro
fine-tune config: a few steps take a second on one CPU thread."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from support.array_cache import write_array_cache

MICRO_FT = ["data.resolution=64", "data.num_workers=0", "train.steps=6", "train.batch_size=4", "train.eval_every=3",
            "train.checkpoint_every=2", "train.log_every=1", "train.eval_batch_size=8", "train.deterministic=true",
            "eval.n_boot=50", "eval.calibration_min_images=4", "model.attention_hidden=16", "model.drop_path_rate=0.1"]
RANDOM_TINY = {"random_init": True, "arch": "tiny", "patch_size": 16}


def write_lesion_cache(root: Path, n_patients: int = 16, seed: int = 0, h: int = 80, w: int = 56) -> tuple[Path, Path]:
    """(cache, labels.csv): per patient L/R x CC/MLO; even patients carry a bright disc (the
    'lesion') in the left breast; density A-D by patient. Phantom label-table layout, raw
    patient ids ``MRN-<n>`` in the table only (the cache holds hashed keys)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    entries, rows = [], []
    for p in range(n_patients):
        for lat in "LR":
            for view in ("CC", "MLO"):
                img = np.clip(rng.normal(18000 + 3000 * (p % 4), 2500, (h, w)), 0, 65535)
                mask = (xx < w * 0.8).astype(np.uint8)
                img[mask == 0] = 0
                lesion = int(p % 2 == 0 and lat == "L")
                if lesion:
                    cy, cx = rng.integers(20, h - 20), rng.integers(12, w // 2)
                    img[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 60000
                stem = f"P{p:03d}_{lat}_{view}"
                entries.append({"image": img.astype(np.uint16), "mask": mask, "id": f"{len(entries):04x}{seed:04x}" + "0" * 8,
                                "stem": stem, "laterality": lat, "view": view, "patient_key": f"{p:04d}" + "ab" * 6,
                                "study_key": f"{p:04d}" + "cd" * 6, "source": f"ffdm/{stem}.dcm"})
                rows.append([stem, f"ffdm/{stem}.dcm", f"MRN-{p:04d}", lat, view, "ffdm", "ABCD"[p % 4], lesion,
                             "mass" if lesion else "none", "", ""])
    cache = write_array_cache(Path(root) / "cache", entries)
    labels = Path(root) / "labels.csv"
    with labels.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image_id", "path", "patient_id", "laterality", "view", "kind", "density", "lesion", "lesion_type",
                     "lesion_box", "lesion_slices"])
        wr.writerows(rows)
    return cache, labels
