"""DICOM grey-level pipeline: modality LUT -> VOI (window or LUT) -> MONOCHROME1 inversion.

Every function here maps *stored* pixel values to display values in [0, 1], tissue bright.
For integer pixel data of at most 16 bits the whole pipeline is evaluated once on every
possible stored value (a 256- or 65536-entry table) and applied with one gather: a 26
M-pixel mammogram costs one table lookup instead of several float passes over the image,
which keeps ingestion close to the bare decoding speed.

The formulas follow DICOM PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.1 (SIGMOID) and
C.11.2.1.3.2 (LINEAR_EXACT); ``pydicom.pixels.apply_windowing`` implements the same ones
(the tests check that we agree with it) but works in float64 on the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Window ``values`` (after the modality LUT) to [0, 1] (float64).

    LINEAR:       y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped; x <= c - 0.5 - (w-1)/2 -> 0
    LINEAR_EXACT: y = (x - c) / w + 0.5, clipped
    SIGMOID:      y = 1 / (1 + exp(-4 (x - c) / w))
    """
    x = np.asarray(values, dtype=np.float64)
    function = (function or "LINEAR").strip().upper()
    center = float(center)
    width = float(width)
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"SIGMOID window width must be > 0, got {width}")
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"LINEAR_EXACT window width must be > 0, got {width}")
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if function != "LINEAR":
        raise ValueError(f"unsupported VOI LUT Function {function!r} (expected one of {VOI_FUNCTIONS})")
    if width < 1:
        raise ValueError(f"LINEAR window width must be >= 1, got {width}")
    c = center - 0.5
    w = width - 1.0
    if w == 0:  # a step at c
        return (x > c).astype(np.float64)
    y = (x - c) / w + 0.5
    y[x <= c - w / 2] = 0.0
    y[x > c + w / 2] = 1.0
    return np.clip(y, 0.0, 1.0)


def lut_transform(values: np.ndarray, descriptor, data) -> np.ndarray:
    """Apply a VOI LUT (LUTDescriptor + LUTData) to ``values``; output scaled to [0, 1].

    The output is normalised by the table's own range rather than by the declared bit depth:
    vendors often declare 16 bits and fill 12, which would otherwise give a near-black image.
    """
    n_entries, first_mapped, _bits = (int(v) for v in descriptor)
    n_entries = n_entries or 65536
    table = np.asarray(data, dtype=np.float64).ravel()[:n_entries]
    if table.size == 0:
        raise ValueError("empty VOI LUT")
    idx = np.clip(np.round(np.asarray(values, dtype=np.float64) - first_mapped), 0, table.size - 1).astype(np.int64)
    lo, hi = float(table.min()), float(table.max())
    out = table[idx]
    if hi > lo:
        return (out - lo) / (hi - lo)
    return np.zeros_like(out)


@dataclass(frozen=True)
class GreyParams:
    """Everything needed to turn one frame's stored values into display values."""

    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: tuple | None = None  # (descriptor, data) of a Modality LUT Sequence item
    center: float | None = None
    width: float | None = None
    function: str = "LINEAR"
    voi_lut: tuple | None = None  # (descriptor, data) of a VOI LUT Sequence item
    monochrome1: bool = False
    for_processing: bool = False  # raw detector data: percentile window + log instead of VOI
    log_relation: bool = False  # PixelIntensityRelationship LOG (data already logarithmic)

    def modality(self, stored: np.ndarray) -> np.ndarray:
        if self.modality_lut is not None:
            descriptor, data = self.modality_lut
            n, first, _ = (int(v) for v in descriptor)
            table = np.asarray(data, dtype=np.float64).ravel()[: (n or 65536)]
            idx = np.clip(np.asarray(stored, dtype=np.float64) - first, 0, table.size - 1).astype(np.int64)
            return table[idx]
        return np.asarray(stored, dtype=np.float64) * self.slope + self.intercept


def display_values(values: np.ndarray, params: GreyParams, weights: np.ndarray | None = None) -> np.ndarray:
    """Stored values -> [0, 1] tissue bright (float64).

    ``values`` is either the image itself or the table of all possible stored values.
    ``weights`` (same shape) says how many image pixels each entry stands for: the pixel
    histogram for a table, a 0/1 validity mask (padding = 0) for an image, ``None`` = all 1.
    It only matters for the data-driven windows (no VOI in the header, or FOR PROCESSING
    data), which use percentiles of the real image values, padding excluded.
    """
    x = params.modality(values)
    if params.for_processing:
        if not params.log_relation:
            # raw detector signal is proportional to the transmitted dose: its log is
            # proportional to attenuation (thickness x density), which is what we look at
            x = np.log1p(np.maximum(x - _weighted_percentile(x, weights, 0.0), 0.0))
        y = _percentile_window(x, weights, 0.5, 99.5)
    elif params.voi_lut is not None:
        y = lut_transform(x, *params.voi_lut)
    elif params.center is not None and params.width is not None and params.width > 0:
        y = window(x, params.center, params.width, params.function)
    else:
        y = _percentile_window(x, weights, 0.0, 100.0)
    if params.monochrome1:
        y = 1.0 - y
    return y


def _weighted_percentile(x: np.ndarray, weights: np.ndarray | None, pct: float) -> float:
    flat = x.ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None:
        keep = w > 0
        flat, w = flat[keep], w[keep]
    if flat.size == 0:
        return 0.0
    if flat.size > 1_000_000:  # an image, not a table: a regular subsample is plenty
        step = flat.size // 1_000_000 + 1
        flat = flat[::step]
        w = None if w is None else w[::step]
    if w is None:
        return float(np.percentile(flat, pct))
    order = np.argsort(flat, kind="stable")
    cw = np.cumsum(w[order])
    k = int(np.searchsorted(cw, pct / 100.0 * cw[-1], side="left"))
    return float(flat[order][min(k, flat.size - 1)])


def _percentile_window(x: np.ndarray, weights: np.ndarray | None, lo_pct: float, hi_pct: float) -> np.ndarray:
    lo = _weighted_percentile(x, weights, lo_pct)
    hi = _weighted_percentile(x, weights, hi_pct)
    if not hi > lo:
        return np.zeros_like(x, dtype=np.float64)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)
