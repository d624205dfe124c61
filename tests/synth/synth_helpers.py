"""Small helpers shared by the synth tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom


def labels_of(folder: Path) -> list[dict]:
    with (Path(folder) / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def tissue_bright(ds) -> np.ndarray:
    """Stored pixels as [0, 1], tissue bright (MONOCHROME1 inverted), no windowing."""
    top = (1 << int(ds.BitsStored)) - 1
    a = ds.pixel_array.astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        a = top - a
    return (a / top).astype(np.float32)


def read(folder: Path, row: dict):
    return pydicom.dcmread(Path(folder) / row["path"])
