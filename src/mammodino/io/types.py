"""What every reader returns: display-ready pixels plus the few header facts ingestion needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MammoImage:
    """One mammogram (FFDM, ``(H, W)``) or tomosynthesis volume (DBT, ``(Z, H, W)``).

    ``pixels`` is float32 in [0, 1] (or uint16 0..65535 when a reader is called with
    ``dtype="uint16"``, as the indexer does to halve memory), tissue bright (MONOCHROME2
    sense), padding 0, in the orientation of the source file (no flip yet: orientation is
    decided from the mask).

    ``meta`` keys (all present, ``""``/``None`` when unknown):
    ``laterality`` ("L"/"R"/""), ``view`` ("CC", "MLO", ...), ``laterality_source``
    ("tag"/""), ``patient_id`` (raw, kept in memory only; never write it),
    ``study_uid``, ``series_uid``, ``kind`` ("ffdm"/"dbt"), ``source_format``
    ("dicom"/"png"/"tiff"/"npy"/...), ``for_processing`` (bool).
    """

    pixels: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def is_volume(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def height(self) -> int:
        return int(self.pixels.shape[-2])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[-1])

    def reference_plane(self) -> np.ndarray:
        """A 2-D image that shows the whole breast: the image itself, or for a volume the
        per-pixel maximum over slices (every slice's breast footprint is inside it)."""
        if self.pixels.ndim == 2:
            return self.pixels
        return self.pixels.max(axis=0)


def empty_meta(**values) -> dict:
    meta = {
        "laterality": "",
        "view": "",
        "laterality_source": "",
        "patient_id": None,
        "study_uid": None,
        "series_uid": None,
        "kind": "ffdm",
        "source_format": "",
        "for_processing": False,
    }
    meta.update(values)
    return meta
