"""A cache folder from in-memory arrays, for the tests and the loader benchmark.

Same layout and manifest as ``mammodino index`` writes (:mod:`mammodino.data.cache`), but
the images are given, not read and segmented, so a test can choose every pixel.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mammodino.data.cache import MANIFEST_COLUMNS, MANIFEST_NAME, WRITTEN_COLUMNS, image_relpath, mask_relpath


def write_array_cache(out: str | Path, entries: list[dict]) -> Path:
    """A cache folder from in-memory arrays, for tests, benchmarks or another pipeline's output.

    Each entry has ``image`` (uint16 (H, W) or (Z, H, W)), ``mask`` (uint8 (H, W)), ``id``
    and any other manifest fields; sizes, kind, slices and file paths are filled in. The
    manifest has the qc columns only when an entry gives ``qc`` (else: an older cache).
    """
    out = Path(out)
    rows = []
    columns = WRITTEN_COLUMNS if any("qc" in e for e in entries) else MANIFEST_COLUMNS
    for entry in entries:
        entry = dict(entry)
        image, mask = entry.pop("image"), entry.pop("mask")
        image_id = entry["id"]
        for rel, arr in ((image_relpath(image_id), image), (mask_relpath(image_id), mask)):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(out / rel, arr)
        h, w = mask.shape
        kind = entry.get("kind") or ("dbt" if image.ndim == 3 else "ffdm")
        row = {c: "" for c in columns}
        row.update(kind=kind, slices=image.shape[0] if kind == "dbt" else 1, height=h, width=w,
                   breast_box=f"0 0 {w} {h}", tissue_fraction=f"{float(mask.mean()):.4f}", flipped=0,
                   cache_height=h, cache_width=w, image_file=image_relpath(image_id),
                   mask_file=mask_relpath(image_id), status="ok")
        row.update(entry)
        rows.append(row)
    with (out / MANIFEST_NAME).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return out
