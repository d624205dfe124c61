"""The features file that ``mammodino embed`` writes and ``mammodino probe`` reads.

One NPZ (no pickle: every array is numeric or a fixed-width unicode array) with one row per
embedded image (or DBT slice):

=============  =======================================================================
``features``   float32 (N, D): CLS token and mean patch token, concatenated (``--last4``:
               the same for each of the last four blocks, concatenated)
``id``         manifest id (salted hash of the source path)
``patient_key`` pseudonymous patient key from the manifest (never the raw patient id)
``laterality`` L / R / ""
``view``       CC / MLO / ...
``kind``       ffdm / dbt
``stem``       file stem: what label tables call the image id
``slice``      int: DBT slice index (the middle slice for image-level rows), -1 for FFDM
``n_slices``   int: slices of the volume (1 for FFDM)
``cache``      str scalar: the cache folder the images came from
``meta``       str scalar: JSON of how the features were made (checkpoint, resolution, ...)
=============  =======================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammodino import atomic
from mammodino.errors import UserError

STR_COLUMNS = ("id", "patient_key", "laterality", "view", "kind", "stem")
INT_COLUMNS = ("slice", "n_slices")


@dataclass
class FeatureSet:
    features: np.ndarray
    id: np.ndarray
    patient_key: np.ndarray
    laterality: np.ndarray
    view: np.ndarray
    kind: np.ndarray
    stem: np.ndarray
    slice: np.ndarray
    n_slices: np.ndarray
    cache: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1]) if self.features.ndim == 2 else 0

    def image_level_mask(self) -> np.ndarray:
        """Rows that stand for a whole image: every FFDM row, and the middle slice of a
        DBT volume (the rows ``--dbt-slices all`` adds are for slice-level tasks)."""
        is_dbt = self.kind == "dbt"
        return ~is_dbt | (self.slice == self.n_slices // 2)

    def subset(self, idx) -> "FeatureSet":
        idx = np.asarray(idx)
        kw = {name: getattr(self, name)[idx] for name in ("features",) + STR_COLUMNS + INT_COLUMNS}
        return FeatureSet(**kw, cache=self.cache, meta=dict(self.meta))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"features": np.asarray(self.features, dtype=np.float32)}
        for name in STR_COLUMNS:
            arrays[name] = np.asarray([str(v) for v in getattr(self, name)], dtype=str)
        for name in INT_COLUMNS:
            arrays[name] = np.asarray(getattr(self, name), dtype=np.int64)
        arrays["cache"] = np.asarray(str(self.cache))
        arrays["meta"] = np.asarray(json.dumps(self.meta, sort_keys=True))
        atomic.atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".tmp.npz")
        return path


def load_features(path: str | Path) -> FeatureSet:
    """Read a features NPZ written by :meth:`FeatureSet.save` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"features file {path}: no such file (run `mammodino embed` first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("features",) + STR_COLUMNS if k not in z.files]
            if missing:
                raise UserError(f"{path}: not a mammodino features file (missing {', '.join(missing)})")
            n = z["features"].shape[0]
            kw = {"features": z["features"].astype(np.float32)}
            for name in STR_COLUMNS:
                kw[name] = z[name].astype(str)
            kw["slice"] = z["slice"].astype(np.int64) if "slice" in z.files else np.full(n, -1)
            kw["n_slices"] = z["n_slices"].astype(np.int64) if "n_slices" in z.files else np.ones(n, np.int64)
            cache = str(z["cache"]) if "cache" in z.files else ""
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read features ({exc})") from exc
    return FeatureSet(**kw, cache=cache, meta=meta)
