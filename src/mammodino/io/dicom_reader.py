"""Read a mammography DICOM (FFDM, enhanced multi-frame DBT, or a per-slice DBT series).

Order of work, cheapest check first, so that a hostile or useless file costs a header read:
parse the header with the pixel data deferred -> refuse what is not a usable image (dose
reports, presentation states, secondary captures without pixels, FOR PROCESSING raw data,
zero-sized, absurdly large from the header alone, ROI masks and lesion crops
(:mod:`mammodino.io.label_images`), colour, missing decoder, truncated native
pixel data) -> decode -> one table lookup per frame (see :mod:`mammodino.io.voi`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from mammodino.errors import SkipFile
from mammodino.io import uids
from mammodino.io.label_images import annotation_series_reason
from mammodino.io.tags import identity_from_patient_id, laterality_from_tags, view_from_tags
from mammodino.io.types import MammoImage, empty_meta
from mammodino.io.voi import GreyParams, display_values

DEFAULT_MAX_PIXELS = 200_000_000  # Rows x Columns x frames; ~1.2 GB peak while decoding
FOR_PROCESSING_REASON = "FOR PROCESSING (raw detector data)"
JPEGLS_EXTRA_HINT = "install the optional extra: pip install 'mammodino[jpegls]' (python-gdcm)"

# Modalities that are never a picture of a breast (a DX/CR/OT/MG or missing Modality is kept:
# RSNA's files have no Modality at all).
NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "REG", "RWV", "DOC", "AU", "ECG", "PLAN", "RTPLAN", "RTSTRUCT"}
ACCEPTED_MODALITIES = {"MG", "DX", "CR", "OT", "IO", "PX", "XC", "BDUS", ""}

# 2 MB: the header is parsed, the pixel data is read only after the checks pass
_DEFER_SIZE = 2 * 1024 * 1024


def read_dicom(path, include_for_processing: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
               dtype="float32") -> MammoImage:
    """One DICOM file -> :class:`MammoImage` (``(H, W)``, or ``(Z, H, W)`` for multi-frame DBT).

    ``dtype="float32"`` gives [0, 1]; ``dtype="uint16"`` gives the same grey levels as
    0..65535 in half the memory (what the indexer uses: the cache is uint16 anyway).
    Raises :class:`~mammodino.errors.SkipFile` with a one-line reason for anything that is not a
    usable mammogram.
    """
    dtype = _out_dtype(dtype)
    ds = open_dicom(path)
    info = _checked(check_header, ds, include_for_processing=include_for_processing, max_pixels=max_pixels)
    stored = _decode(ds, path)
    frames = info["frames"]
    if stored.ndim == 2:
        stored = stored[None]
    if stored.ndim != 3 or stored.shape[0] != frames or stored.shape[1:] != (info["rows"], info["columns"]):
        raise SkipFile(f"decoded pixel data has shape {tuple(stored.shape)}, header says "
                       f"{frames} x {info['rows']} x {info['columns']}")
    converter = _Converter(ds, info)
    if dtype == np.uint16 and stored.dtype.kind in "ui" and stored.dtype.itemsize == 2:
        # in place, a band of rows at a time: no second full-size array (52 MB for a
        # 5355 x 4915 mammogram), which also saves the page faults of touching it
        pixels = stored.view(np.uint16)
        for z in range(frames):
            converter.convert_in_place(pixels[z], z)
    else:
        pixels = np.empty(stored.shape, dtype=dtype)
        for z in range(frames):
            converter.convert(stored[z], z, out=pixels[z])
    del stored
    meta = _checked(_meta, ds, info)
    return MammoImage(pixels[0] if frames == 1 and meta["kind"] == "ffdm" else pixels, meta)


def read_dicom_series(paths, include_for_processing: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                      dtype="float32") -> MammoImage:
    """DBT stored one slice per file: read every slice, order them, stack to ``(Z, H, W)``.

    Slices are ordered by ImagePositionPatient along the slice normal when every slice has
    one, else by InstanceNumber, else by file name.
    """
    dtype = _out_dtype(dtype)
    paths = sorted(Path(p) for p in paths)
    if not paths:
        raise SkipFile("empty slice series")
    headers = []
    for p in paths:
        ds = open_dicom(p)
        info = _checked(check_header, ds, include_for_processing=include_for_processing, max_pixels=max_pixels)
        if info["frames"] != 1:
            raise SkipFile(f"slice series mixes multi-frame files ({p.name} has {info['frames']} frames)")
        headers.append((p, ds, info))
    shapes = {(i["rows"], i["columns"]) for _, _, i in headers}
    if len(shapes) != 1:
        raise SkipFile(f"slices of one series have different sizes: {sorted(shapes)}")
    rows, cols = shapes.pop()
    if rows * cols * len(headers) > max_pixels:
        raise SkipFile(f"series too large: {len(headers)} x {rows} x {cols} pixels > {max_pixels}")
    headers.sort(key=_slice_sort_key(headers))
    pixels = np.empty((len(headers), rows, cols), dtype=dtype)
    for z, (p, ds, info) in enumerate(headers):
        stored = _decode(ds, p)
        if stored.shape != (rows, cols):
            raise SkipFile(f"{p.name}: decoded shape {tuple(stored.shape)} != header {rows} x {cols}")
        _Converter(ds, info).convert(stored, 0, out=pixels[z])
    meta = _checked(_meta, headers[0][1], headers[0][2])
    meta["kind"] = "dbt"
    return MammoImage(pixels, meta)


# --------------------------------------------------------------------------- header


def _checked(fn, *args, **kwargs):
    """pydicom parses elements lazily: a damaged one (unknown VR, bad length) raises only
    when a check reads it. That is a property of the file, so it is a SkipFile too."""
    try:
        return fn(*args, **kwargs)
    except SkipFile:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SkipFile(f"unreadable DICOM header ({_one_line(exc)})") from None


def open_dicom(path) -> pydicom.Dataset:
    """Parse a DICOM header (pixel data deferred). Non-DICOM and broken files -> SkipFile."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise SkipFile(f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise SkipFile("empty file (0 bytes)")
    try:
        return pydicom.dcmread(path, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        pass  # no 128-byte preamble + DICM: maybe a bare dataset, try once more leniently
    except Exception as exc:  # noqa: BLE001 - any parser failure is a property of the file
        raise SkipFile(f"unreadable DICOM ({_one_line(exc)})") from None
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER_SIZE, force=True)
    except Exception:  # noqa: BLE001
        raise SkipFile("not a DICOM file (no DICM marker and no parsable data set)") from None
    # force=True accepts almost any bytes; demand the tags a real image header has
    if not (("Rows" in ds and "Columns" in ds) or "SOPClassUID" in ds):
        raise SkipFile("not a DICOM file (no DICM marker and no parsable data set)")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    return ds


def sop_class_of(ds) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    return str(uid) if uid else ""


def sop_class_name(uid: str) -> str:
    if uid and not _UID_RE.fullmatch(uid):
        return "invalid SOP Class UID"  # e.g. a damaged length: the 'UID' holds the header
    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "unknown SOP class")


_UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
_CODE_RE = re.compile(r"[A-Z0-9 _]{0,16}")


def shown(value, pattern=_CODE_RE) -> str:
    """A header value fit for a reason: shown only when it looks like what the tag holds
    (a code string, a number), else a placeholder; never free text or raw bytes."""
    text = str(value).strip()
    return text if pattern.fullmatch(text) else "(invalid value)"


def is_for_processing(ds) -> bool:
    """PresentationIntentType, ImageType or the SOP class says FOR PROCESSING."""
    if str(ds.get("PresentationIntentType", "")).strip().upper() == "FOR PROCESSING":
        return True
    image_type = ds.get("ImageType")
    if image_type is not None:
        values = image_type if isinstance(image_type, (list, tuple, pydicom.multival.MultiValue)) else [image_type]
        if any("FOR PROCESSING" in str(v).upper() for v in values):
            return True
    return sop_class_of(ds) in uids.FOR_PROCESSING_SOPS


def check_header(ds, include_for_processing: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Every refusal that the header alone can justify. Returns rows/columns/frames/flags."""
    sop = sop_class_of(ds)
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_name = sop_class_name(sop)
    if modality == "SR" or " SR " in f" {sop_name} " or "Structured Report" in sop_name:
        raise SkipFile(f"structured report ({sop_name}), not an image")
    if modality in NON_IMAGE_MODALITIES:
        raise SkipFile(f"not an image (Modality {shown(modality)}, {sop_name})")
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if not has_pixels:
        raise SkipFile(f"no pixel data ({sop_name})")
    if modality not in ACCEPTED_MODALITIES:
        raise SkipFile(f"Modality {shown(modality)} is not mammography")
    for_processing = is_for_processing(ds)
    if for_processing and not include_for_processing:
        raise SkipFile(FOR_PROCESSING_REASON)
    if sop == uids.BREAST_PROJECTION_FOR_PRESENTATION:
        raise SkipFile("DBT source projections (Breast Projection X-Ray), not reconstructed slices")
    rows = _int(ds.get("Rows"))
    columns = _int(ds.get("Columns"))
    if not rows or not columns or rows < 0 or columns < 0:
        raise SkipFile(f"zero-sized image (Rows {rows}, Columns {columns})")
    frames = _int(ds.get("NumberOfFrames"), default=1)
    if frames is None or frames <= 0:
        raise SkipFile(f"zero frames (NumberOfFrames {shown(ds.get('NumberOfFrames'), re.compile(r'-?[0-9]{1,12}'))})")
    n_pixels = rows * columns * frames
    if n_pixels > max_pixels:
        raise SkipFile(f"image too large: {frames} x {rows} x {columns} = {n_pixels:,} pixels "
                       f"(limit {max_pixels:,}; raise it with --max-pixels)")
    annotation = annotation_series_reason(ds.get("SeriesDescription", ""))
    if annotation:
        raise SkipFile(annotation)  # CBIS-DDSM's ROI masks and lesion crops, beside the full images
    samples = _int(ds.get("SamplesPerPixel"), default=1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise SkipFile(f"colour image ({shown(photometric)}, {samples} samples per pixel), not a mammogram")
    tsyntax = UID(str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian)))
    bits_allocated = _int(ds.get("BitsAllocated"), default=16) or 16
    if "PixelData" in ds:
        _check_decoder(tsyntax)
        if not tsyntax.is_compressed:
            expected = rows * columns * frames * bits_allocated // 8
            got = _element_length(ds, "PixelData")
            if got is not None and got < expected:
                raise SkipFile(f"truncated pixel data ({got:,} of {expected:,} bytes)")
    return {
        "rows": rows,
        "columns": columns,
        "frames": frames,
        "for_processing": for_processing,
        "monochrome1": photometric == "MONOCHROME1",
        "sop": sop,
        "transfer_syntax": str(tsyntax),
    }


def _check_decoder(tsyntax: UID) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(tsyntax)
    except Exception:  # noqa: BLE001 - pydicom knows no decoder for this syntax at all
        raise SkipFile(f"no pixel decoder for transfer syntax {shown(tsyntax, _UID_RE) if tsyntax.name == tsyntax else tsyntax.name}") from None
    if not decoder.is_available:
        hint = JPEGLS_EXTRA_HINT if _needs_jpegls_extra(tsyntax) else (
            "decoder missing: " + "; ".join(decoder.missing_dependencies))
        raise SkipFile(f"cannot decode {tsyntax.name}: {hint}")


def _needs_jpegls_extra(tsyntax: UID) -> bool:
    return tsyntax in {
        pydicom.uid.JPEGLossless,
        pydicom.uid.JPEGLosslessSV1,
        pydicom.uid.JPEGLSLossless,
        pydicom.uid.JPEGLSNearLossless,
        pydicom.uid.JPEGBaseline8Bit,
        pydicom.uid.JPEGExtended12Bit,
    }


def _element_length(ds, keyword: str) -> int | None:
    """Bytes actually present for a (possibly deferred) element, without reading it."""
    try:
        raw = ds.get_item(keyword)
    except Exception:  # noqa: BLE001
        return None
    if raw is None:
        return None
    value = getattr(raw, "value", None)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    length = getattr(raw, "length", None)
    if length is None or length == 0xFFFFFFFF:
        return None
    # deferred: the header states the length; the file may hold fewer bytes
    offset = getattr(raw, "value_tell", None)
    filename = getattr(ds, "filename", None)
    if offset is not None and isinstance(filename, str):
        try:
            return max(0, min(int(length), os.path.getsize(filename) - int(offset)))
        except OSError:
            return None
    return int(length)


# --------------------------------------------------------------------------- pixels


def _decode(ds, path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except MemoryError:
        raise SkipFile("out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt stream is a property of the file
        raise SkipFile(f"pixel data cannot be decoded ({_one_line(exc)})") from None
    return arr


class _Converter:
    """Stored values -> float32 [0, 1] per frame, through a cached table when possible."""

    def __init__(self, ds, info: dict):
        self.ds = ds
        self.info = info
        self.bits_allocated = _int(ds.get("BitsAllocated"), default=16) or 16
        self.bits_stored = _int(ds.get("BitsStored"), default=self.bits_allocated) or self.bits_allocated
        self.signed = _int(ds.get("PixelRepresentation"), default=0) == 1
        self.padding = _padding_range(ds)
        self._tables: dict = {}

    def convert(self, stored: np.ndarray, frame: int, out: np.ndarray) -> None:
        params = frame_params(self.ds, frame, self.info)
        if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:
            table = self._table(params, stored, out.dtype)
            index = stored.view(np.uint16 if stored.dtype.itemsize == 2 else np.uint8)
            np.take(table, index, out=out)
            return
        # float data or > 16 bits: compute directly (rare in mammography)
        values = stored.astype(np.float64)
        valid = np.ones(values.shape, dtype=bool)
        if self.padding is not None:
            lo, hi = self.padding
            valid &= ~((values >= lo) & (values <= hi))
        y = display_values(values, params, weights=valid)
        y[~valid] = 0.0
        out[...] = _cast(y, out.dtype)

    def convert_in_place(self, frame: np.ndarray, index: int, band_bytes: int = 4 << 20) -> None:
        """uint16 output over 16-bit stored values, overwriting ``frame`` band by band."""
        params = frame_params(self.ds, index, self.info)
        table = self._table(params, frame, np.uint16)
        raw = frame.view(np.uint16)
        rows = max(1, band_bytes // max(1, raw.shape[-1] * 2))
        for y in range(0, raw.shape[0], rows):
            raw[y:y + rows] = table[raw[y:y + rows]]

    def _table(self, params: GreyParams, stored: np.ndarray, dtype) -> np.ndarray:
        needs_histogram = params.for_processing or (
            params.voi_lut is None and (params.center is None or not params.width or params.width <= 0))
        key = (params, np.dtype(dtype).str) if not needs_histogram else None
        if key is not None and key in self._tables:
            return self._tables[key]
        n = 1 << (8 * stored.dtype.itemsize)
        raw = np.arange(n, dtype=np.int64)
        bits = min(self.bits_stored, 8 * stored.dtype.itemsize)
        mask = (1 << bits) - 1
        values = raw & mask
        if self.signed:
            sign = 1 << (bits - 1)
            values = (values ^ sign) - sign
        valid = np.ones(n, dtype=bool)
        if self.padding is not None:
            lo, hi = self.padding
            valid &= ~((values >= lo) & (values <= hi))
        weights = None
        if needs_histogram:
            index = stored.view(np.uint16 if stored.dtype.itemsize == 2 else np.uint8)
            weights = np.bincount(index.ravel(), minlength=n).astype(np.float64) * valid
        y = display_values(values, params, weights=weights if weights is not None else valid)
        y[~valid] = 0.0
        table = _cast(y, dtype)
        if key is not None:
            self._tables[key] = table
        return table


def _out_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be float32 or uint16, got {dtype}")
    return dtype


def _cast(y: np.ndarray, dtype) -> np.ndarray:
    """[0, 1] float64 -> float32 as is, or uint16 0..65535 (rounded)."""
    if np.dtype(dtype) == np.uint16:
        return np.rint(np.clip(y, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return y.astype(np.float32)


def _padding_range(ds) -> tuple[float, float] | None:
    """PixelPaddingValue (and optional PixelPaddingRangeLimit), in stored values."""
    value = ds.get("PixelPaddingValue")
    if value is None or isinstance(value, (bytes, bytearray)):
        return None
    try:
        value = float(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None or isinstance(limit, (bytes, bytearray)):
        return value, value
    try:
        limit = float(limit)
    except (TypeError, ValueError):
        return value, value
    return min(value, limit), max(value, limit)


def frame_params(ds, frame: int, info: dict) -> GreyParams:
    """Grey-level parameters of one frame: per-frame functional groups override the shared
    functional groups, which override the top-level (single-frame) attributes."""
    sources = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        sources.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        sources.append(shared[0])

    slope, intercept, voi_item = None, None, None
    for group in sources:
        if slope is None:
            pvt = group.get("PixelValueTransformationSequence")
            if pvt:
                slope = pvt[0].get("RescaleSlope")
                intercept = pvt[0].get("RescaleIntercept")
        if voi_item is None:
            voi = group.get("FrameVOILUTSequence")
            if voi and ("WindowCenter" in voi[0] or "VOILUTSequence" in voi[0]):
                voi_item = voi[0]
    if slope is None:
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    voi_item = voi_item if voi_item is not None else ds

    modality_lut = None
    mlut = ds.get("ModalityLUTSequence")
    if mlut and _usable_lut(mlut[0]):
        modality_lut = (tuple(mlut[0].LUTDescriptor), tuple(_lut_data(mlut[0])))

    voi_lut = None
    vlut = voi_item.get("VOILUTSequence")
    if vlut and _usable_lut(vlut[0]):
        voi_lut = (tuple(vlut[0].LUTDescriptor), tuple(_lut_data(vlut[0])))

    center = _first_number(voi_item.get("WindowCenter"))
    width = _first_number(voi_item.get("WindowWidth"))
    function = str(voi_item.get("VOILUTFunction", ds.get("VOILUTFunction", "LINEAR")) or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if function == "LINEAR" and width is not None and width < 1:
        width = None  # invalid window: fall back to the data range
    relation = str(ds.get("PixelIntensityRelationship", "") or "").strip().upper()
    return GreyParams(
        slope=_float(slope, 1.0),
        intercept=_float(intercept, 0.0),
        modality_lut=modality_lut,
        center=center,
        width=width,
        function=function,
        voi_lut=voi_lut,
        monochrome1=info["monochrome1"],
        for_processing=info["for_processing"],
        log_relation=relation == "LOG",
    )


def _usable_lut(item) -> bool:
    """A LUT item with a 3-value descriptor and at least one finite table entry (an empty
    LUTData reads as None, which would become a table of NaN); otherwise it is ignored."""
    if "LUTDescriptor" not in item or "LUTData" not in item:
        return False
    try:
        if len(item.LUTDescriptor) != 3:
            return False
        data = _lut_data(item).astype(np.float64)
    except (TypeError, ValueError):
        return False
    return data.size > 0 and bool(np.isfinite(data).all())


def _lut_data(item) -> np.ndarray:
    data = item.get("LUTData")
    if data is None:
        return np.zeros(0)
    if isinstance(data, (bytes, bytearray)):
        bits = int(item.LUTDescriptor[2])
        return np.frombuffer(data, dtype=np.uint16 if bits > 8 else np.uint8)
    return np.asarray(data if isinstance(data, (list, tuple, pydicom.multival.MultiValue)) else [data])


# --------------------------------------------------------------------------- metadata


def _meta(ds, info: dict) -> dict:
    frames = info["frames"]
    kind = "dbt" if (frames > 1 or info["sop"] == uids.BREAST_TOMOSYNTHESIS) else "ffdm"
    laterality = laterality_from_tags(ds)
    view = view_from_tags(ds)
    patient_id = ds.get("PatientID")
    patient_id = str(patient_id).strip() if patient_id not in (None, "") else None
    # film archives (CBIS-DDSM) keep patient, side and view only inside PatientID
    cbis_patient, cbis_laterality, cbis_view = identity_from_patient_id(patient_id)
    if cbis_patient:
        patient_id = cbis_patient
    if not laterality and cbis_laterality:
        laterality = cbis_laterality
    view = view or cbis_view
    return empty_meta(
        laterality=laterality,
        view=view,
        laterality_source="tag" if laterality else "",
        patient_id=patient_id,
        study_uid=str(ds.get("StudyInstanceUID") or "") or None,
        series_uid=str(ds.get("SeriesInstanceUID") or "") or None,
        kind=kind,
        source_format="dicom",
        for_processing=info["for_processing"],
    )


def _slice_sort_key(headers):
    def ipp(ds):
        pos = ds.get("ImagePositionPatient")
        if pos is None or len(pos) != 3:
            return None
        orient = ds.get("ImageOrientationPatient")
        p = np.array([float(v) for v in pos])
        if orient is not None and len(orient) == 6:
            o = np.array([float(v) for v in orient])
            normal = np.cross(o[:3], o[3:])
            return float(p @ normal)
        return float(p[2])

    positions = [ipp(ds) for _, ds, _ in headers]
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        lookup = {id(h): pos for h, pos in zip(headers, positions)}
        return lambda h: lookup[id(h)]
    numbers = [_int(ds.get("InstanceNumber")) for _, ds, _ in headers]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        return lambda h: _int(h[1].get("InstanceNumber"))
    return lambda h: h[0].name


def _first_number(value) -> float | None:
    if value is None or isinstance(value, (bytes, bytearray)):
        return None
    try:
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0] if len(value) else None
        number = None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
    return number if number is None or math.isfinite(number) else None  # 'nan', 'inf': as if absent


def _float(value, default: float) -> float:
    number = _first_number(value)
    return default if number is None else number


def _int(value, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(float(value[0] if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else value))
    except (TypeError, ValueError):
        return default


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\r", " ").replace("\n", " ")
    return text[:limit]
