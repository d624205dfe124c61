"""Hostile files made from good ones: what a decade-old PACS export really contains.

Every mutation is a function ``(data: bytes, rng) -> bytes | None`` (None: does not apply
to this seed) registered in :data:`FAMILIES` with what the indexer must do with the result:

- ``"skip"``: the file is not a usable image; the indexer must record it as skipped with a
  reason (e.g. truncated, zero frames, 65535 x 65535 x 10^6 pixels, no pixel data).
- ``"either"``: the damage may or may not matter (a flipped byte in a private tag, a NaN
  window); ok or skipped are both right, but if ok, the cached files must load.
- ``"keep"``: harmless to a good seed (a garbage laterality tag, a long patient id): a good
  seed stays ok, a bad seed stays skipped.

Mutations work on bytes (truncations, flips, transfer syntax in the file meta, element
lengths) or on the parsed header with the original pixel data bytes appended unchanged
(absurd Rows/Columns/NumberOfFrames, bad windows, wrong SOP class). Nothing reads the
pixel data, so even a 27 MB RSNA file becomes a mutant in milliseconds; a mutant of a
header-only seed (pixel data cut to a few kB) fails fast in the reader as well.

Example:
    >>> rng = np.random.default_rng(0)                                     # doctest: +SKIP
    >>> bad = FAMILIES["huge-dims"].fn(Path("a.dcm").read_bytes(), rng)    # doctest: +SKIP
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mammodino.io import uids

PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
EXPLICIT_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
EXPLICIT_LE = uids.EXPLICIT_LITTLE_ENDIAN
ENCAPSULATED_PREFIXES = uids.ENCAPSULATED_PREFIXES


# --------------------------------------------------------------------------- byte helpers


def dataset_offset(data: bytes) -> int:
    """Where the file meta group starts: 132 after a preamble + 'DICM', else 0."""
    return 132 if len(data) >= 132 and data[128:132] == b"DICM" else 0


def meta_elements(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int]:
    """The group-0002 elements ``[(element, vr, value)]`` (always explicit VR little
    endian) and the offset where the data set proper begins."""
    pos = dataset_offset(data)
    out = []
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in EXPLICIT_LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        out.append((elem, vr, data[start:start + length]))
        pos = start + length
    return out, pos


def _encode_meta(elements: list[tuple[int, bytes, bytes]]) -> bytes:
    body = b""
    for elem, vr, value in elements:
        if elem == 0x0000:
            continue
        if vr in EXPLICIT_LONG_VRS:
            body += struct.pack("<HH2sHI", 2, elem, vr, 0, len(value)) + value
        else:
            body += struct.pack("<HH2sH", 2, elem, vr, len(value)) + value
    return struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body)) + body


def set_meta_uid(data: bytes, element: int, uid: str) -> bytes:
    """Replace a UID of the file meta (e.g. 0x0010, TransferSyntaxUID) without touching
    the data set: the file then claims an encoding it does not have."""
    elements, end = meta_elements(data)
    if not elements:
        return data
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\0"
    found = False
    new = []
    for elem, vr, old in elements:
        if elem == element:
            new.append((elem, b"UI", value))
            found = True
        else:
            new.append((elem, vr, old))
    if not found:
        new.append((element, b"UI", value))
        new.sort(key=lambda e: e[0])
    start = dataset_offset(data)
    return data[:start] + _encode_meta(new) + data[end:]


def transfer_syntax(data: bytes) -> str:
    for elem, _, value in meta_elements(data)[0]:
        if elem == 0x0010:
            return value.rstrip(b"\0 ").decode("ascii", "replace")
    return ""


def pixel_data_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) tag in the data set, or -1."""
    _, start = meta_elements(data)
    return data.find(PIXEL_TAG, start)


def pixel_value_offset(data: bytes) -> int:
    """Offset of the first pixel data byte (after the element header), or -1."""
    off = pixel_data_offset(data)
    if off < 0:
        return -1
    return off + (12 if data[off + 4:off + 6] in (b"OB", b"OW") else 8)


def is_encapsulated(data: bytes) -> bool:
    return transfer_syntax(data).startswith(ENCAPSULATED_PREFIXES)


def flip_bytes(data: bytes, lo: int, hi: int, n: int, rng: np.random.Generator) -> bytes | None:
    if hi - lo < 1:
        return None
    buf = bytearray(data)
    for pos in rng.integers(lo, hi, size=n):
        buf[int(pos)] ^= int(rng.integers(1, 256))
    return bytes(buf)


def edit_header(data: bytes, edit: Callable[[Dataset], None]) -> bytes | None:
    """Parse the header (everything before the pixel data), let ``edit`` change it, write it
    back in its own encoding and append the original pixel data bytes unchanged."""
    off = pixel_data_offset(data)
    head, tail = (data[:off], data[off:]) if off > 0 else (data, b"")
    try:
        ds = pydicom.dcmread(io.BytesIO(head), force=True)
        edit(ds)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - a seed pydicom cannot rewrite: mutation does not apply
        return None
    return buf.getvalue() + tail


def insert_in_dataset(data: bytes, blob: bytes) -> bytes | None:
    """Insert raw explicit-VR-little-endian element bytes at the start of the data set."""
    if transfer_syntax(data) not in (EXPLICIT_LE,) and not is_encapsulated(data):
        return None
    _, start = meta_elements(data)
    return data[:start] + blob + data[start:]


def _explicit(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" " if vr not in (b"OB", b"UN", b"UI") else b"\0"
    if vr in EXPLICIT_LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def nested_sequence(depth: int) -> bytes:
    """A private sequence nested ``depth`` levels deep (undefined lengths throughout)."""
    creator = _explicit(0x0009, 0x0010, b"LO", b"FUZZ")
    open_sq = struct.pack("<HH2sHI", 0x0009, 0x1001, b"SQ", 0, 0xFFFFFFFF)
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    close_sq = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return creator + (open_sq + open_item) * depth + (close_item + close_sq) * depth


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    name: str
    fn: Callable[[bytes, np.random.Generator], bytes | None]
    expect: str  # skip | either | keep
    note: str = ""


FAMILIES: dict[str, Family] = {}


def family(name: str, expect: str, note: str = ""):
    def register(fn):
        FAMILIES[name] = Family(name, fn, expect, note)
        return fn

    return register


# truncations ---------------------------------------------------------------------------


@family("truncate-header", "skip", "file cut before the pixel data")
def _truncate_header(data, rng):
    off = pixel_data_offset(data)
    end = off if off > 0 else len(data)
    return data[: int(rng.integers(0, max(1, end)))]


@family("truncate-pixels", "skip", "file cut inside the pixel data")
def _truncate_pixels(data, rng):
    start = pixel_value_offset(data)
    if start < 0 or len(data) - start < 4:
        return None
    return data[: int(rng.integers(start, len(data) - 1))]


@family("truncate-1-byte", "skip", "last byte missing")
def _truncate_one(data, rng):
    return data[:-1] if pixel_value_offset(data) > 0 and not is_encapsulated(data) else None


# flipped / overwritten bytes ------------------------------------------------------------


@family("flip-header", "either", "1-8 random bytes of the header changed")
def _flip_header(data, rng):
    end = pixel_data_offset(data)
    return flip_bytes(data, dataset_offset(data), end if end > 0 else len(data), int(rng.integers(1, 9)), rng)


@family("flip-meta", "either", "random bytes of the file meta group changed")
def _flip_meta(data, rng):
    _, end = meta_elements(data)
    return flip_bytes(data, dataset_offset(data), end, int(rng.integers(1, 4)), rng)


@family("flip-pixels", "keep", "random bytes of the pixel data changed")
def _flip_pixels(data, rng):
    start = pixel_value_offset(data)
    if start < 0:
        return None
    return flip_bytes(data, start, len(data), int(rng.integers(1, 33)), rng)


@family("zero-run", "either", "a run of header bytes zeroed")
def _zero_run(data, rng):
    end = pixel_data_offset(data)
    end = end if end > 0 else len(data)
    lo = dataset_offset(data)
    if end - lo < 32:
        return None
    start = int(rng.integers(lo, end - 16))
    n = int(rng.integers(16, 257))
    return data[:start] + b"\0" * min(n, end - start) + data[start + min(n, end - start):]


@family("insert-garbage", "either", "random bytes inserted into the header")
def _insert_garbage(data, rng):
    end = pixel_data_offset(data)
    end = end if end > 0 else len(data)
    pos = int(rng.integers(dataset_offset(data), max(dataset_offset(data) + 1, end)))
    return data[:pos] + rng.bytes(int(rng.integers(1, 200))) + data[pos:]


def native_pixel_length_at(data: bytes) -> int | None:
    """Byte offset of the length field of native (not encapsulated) PixelData, or None."""
    off = pixel_data_offset(data)
    if off < 0 or is_encapsulated(data):
        return None
    return off + (8 if data[off + 4:off + 6] in (b"OB", b"OW") else 4)


@family("pixel-length-huge", "either", "PixelData length 4 GB, beyond the end of the file (the data itself is all there)")
def _pixel_length_huge(data, rng):
    at = native_pixel_length_at(data)
    if at is None:
        return None
    return data[:at] + struct.pack("<I", 0xFFFFFFF0) + data[at + 4:]


@family("pixel-length-undefined", "skip", "native PixelData with undefined length")
def _pixel_length_undefined(data, rng):
    at = native_pixel_length_at(data)
    if at is None:
        return None
    return data[:at] + struct.pack("<I", 0xFFFFFFFF) + data[at + 4:]


@family("pixel-length-short", "either", "PixelData length field smaller than the data")
def _pixel_length_short(data, rng):
    at = native_pixel_length_at(data)
    if at is None:
        return None
    (length,) = struct.unpack_from("<I", data, at)
    if length < 4:
        return None
    new = int(rng.integers(0, length // 2)) * 2
    return data[:at] + struct.pack("<I", new) + data[at + 4:]


@family("meta-uid-swallows-header", "skip", "the length of MediaStorageSOPClassUID runs over the whole data set")
def _meta_swallow(data, rng):
    """A single damaged length field in the file meta: the SOP class UID 'value' then holds
    the whole header, patient name and id included. A reason that quotes the SOP class
    verbatim would copy them into the manifest."""
    pos = dataset_offset(data)
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return None
        vr = data[pos + 4:pos + 6]
        if vr in EXPLICIT_LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            nxt = pos + 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            nxt = pos + 8 + length
        if elem == 0x0002 and vr == b"UI":
            new = min(0xFFFE, len(data) - (pos + 8)) & ~1
            return data[:pos + 6] + struct.pack("<H", new) + data[pos + 8:]
        pos = nxt
    return None


@family("meta-unknown-vr", "either", "the file meta's SOP class UID element has the unknown VR 'NI' (harmless unless it is read)")
def _meta_unknown_vr(data, rng):
    pos = dataset_offset(data)
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return None
        vr = data[pos + 4:pos + 6]
        if elem == 0x0002 and vr == b"UI":
            return data[:pos + 4] + b"NI" + data[pos + 6:]
        if vr in EXPLICIT_LONG_VRS:
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return None


# transfer syntax -----------------------------------------------------------------------

WRONG_SYNTAXES = {
    "ts-jpeg2000": uids.JPEG_2000_LOSSLESS,
    "ts-jpeg-baseline": uids.JPEG_BASELINE,
    "ts-jpegls": uids.JPEG_LS_LOSSLESS,
    "ts-rle": uids.RLE_LOSSLESS,
    "ts-deflate": uids.DEFLATED_EXPLICIT_LITTLE_ENDIAN,
    "ts-big-endian": uids.EXPLICIT_BIG_ENDIAN,
    "ts-implicit": uids.IMPLICIT_LITTLE_ENDIAN,
    "ts-unknown": "1.2.3.4.5.6.7.8.9",
    "ts-not-a-uid": "hello world",
}


def _ts_family(name: str, uid: str):
    def fn(data, rng):
        if not meta_elements(data)[0] or transfer_syntax(data) == uid:
            return None
        return set_meta_uid(data, 0x0010, uid)

    return fn


for _name, _uid in WRONG_SYNTAXES.items():
    # implicit/explicit confusion may still parse for tags that happen to line up
    FAMILIES[_name] = Family(_name, _ts_family(_name, _uid), "skip" if _name not in ("ts-implicit",) else "either",
                             f"file meta claims {_uid}")


@family("ts-native-on-compressed", "skip", "compressed pixel data, meta claims native")
def _ts_native(data, rng):
    return set_meta_uid(data, 0x0010, EXPLICIT_LE) if is_encapsulated(data) else None


# header values ---------------------------------------------------------------------------


def _header_family(name: str, expect: str, note: str, edit: Callable[[Dataset, np.random.Generator], None]):
    def fn(data, rng):
        return edit_header(data, lambda ds: edit(ds, rng))

    FAMILIES[name] = Family(name, fn, expect, note)


def _set(ds, keyword, value):
    setattr(ds, keyword, value)


_header_family("huge-dims", "skip", "65535 x 65535 x 1e6 pixels",
               lambda ds, r: (_set(ds, "Rows", 65535), _set(ds, "Columns", 65535), _set(ds, "NumberOfFrames", "1000000")))
_header_family("huge-rows", "skip", "Rows 65535 (data far too short)", lambda ds, r: _set(ds, "Rows", 65535))
_header_family("huge-frames", "skip", "NumberOfFrames 2^31-1",
               lambda ds, r: _set(ds, "NumberOfFrames", "2147483647"))
_header_family("just-under-cap", "skip", "14000 x 14000 (under the pixel cap; data far too short)",
               lambda ds, r: (_set(ds, "Rows", 14000), _set(ds, "Columns", 14000)))
_header_family("zero-frames", "skip", "NumberOfFrames 0", lambda ds, r: _set(ds, "NumberOfFrames", "0"))
_header_family("negative-frames", "skip", "NumberOfFrames -5", lambda ds, r: _set(ds, "NumberOfFrames", "-5"))
_header_family("zero-rows", "skip", "Rows 0", lambda ds, r: _set(ds, "Rows", 0))
_header_family("zero-columns", "skip", "Columns 0", lambda ds, r: _set(ds, "Columns", 0))
_header_family("frames-text", "either", "NumberOfFrames 'abc'", lambda ds, r: _set(ds, "NumberOfFrames", "abc"))
_header_family("bits-allocated", "either", "BitsAllocated 1/8/12/32/64",
               lambda ds, r: _set(ds, "BitsAllocated", int(r.choice([1, 8, 12, 32, 64]))))
_header_family("bits-stored", "either", "BitsStored 0/1/40",
               lambda ds, r: (_set(ds, "BitsStored", int(r.choice([0, 1, 40]))), _set(ds, "HighBit", 39)))
_header_family("signed", "either", "PixelRepresentation 1", lambda ds, r: _set(ds, "PixelRepresentation", 1))
_header_family("colour", "skip", "RGB, 3 samples per pixel",
               lambda ds, r: (_set(ds, "PhotometricInterpretation", "RGB"), _set(ds, "SamplesPerPixel", 3)))
_header_family("palette", "skip", "PALETTE COLOR", lambda ds, r: _set(ds, "PhotometricInterpretation", "PALETTE COLOR"))
_header_family("photometric-garbage", "skip", "PhotometricInterpretation 'XYZ'",
               lambda ds, r: _set(ds, "PhotometricInterpretation", "XYZ"))
_header_family("samples-zero", "skip", "SamplesPerPixel 0", lambda ds, r: _set(ds, "SamplesPerPixel", 0))
_header_family("window-zero", "keep", "WindowWidth 0 (invalid: the data range is used)",
               lambda ds, r: (_set(ds, "WindowCenter", "100"), _set(ds, "WindowWidth", "0")))
_header_family("window-nan", "either", "WindowCenter nan, WindowWidth inf",
               lambda ds, r: (_set(ds, "WindowCenter", "nan"), _set(ds, "WindowWidth", "inf")))
_header_family("window-huge", "either", "WindowWidth 1e308",
               lambda ds, r: (_set(ds, "WindowCenter", "-1e308"), _set(ds, "WindowWidth", "1e308")))
_header_family("rescale-nan", "either", "RescaleSlope nan", lambda ds, r: _set(ds, "RescaleSlope", "nan"))
_header_family("rescale-zero", "either", "RescaleSlope 0", lambda ds, r: _set(ds, "RescaleSlope", "0"))
_header_family("voi-function", "keep", "VOILUTFunction 'BOGUS'", lambda ds, r: _set(ds, "VOILUTFunction", "BOGUS"))


def _bad_lut(ds, rng):
    item = Dataset()
    item.LUTDescriptor = [int(rng.choice([0, 1, 65535])), int(rng.integers(-5, 70000)) & 0xFFFF, int(rng.choice([0, 8, 16, 40]))]
    item.LUTData = [int(v) for v in rng.integers(0, 65535, size=int(rng.integers(0, 5)))]
    ds.VOILUTSequence = Sequence([item])
    if rng.random() < 0.5:
        ds.ModalityLUTSequence = Sequence([item])


_header_family("lut-garbage", "either", "VOI/Modality LUT with absurd descriptor and short data", _bad_lut)
_header_family("padding-everything", "either", "PixelPaddingValue 0..65535 (every pixel is padding)",
               lambda ds, r: (_set(ds, "PixelPaddingValue", 0), _set(ds, "PixelPaddingRangeLimit", 65535)))
_header_family("for-processing", "skip", "PresentationIntentType FOR PROCESSING",
               lambda ds, r: _set(ds, "PresentationIntentType", "FOR PROCESSING"))
_header_family("dose-report", "skip", "SOP class of a dose SR, Modality SR",
               lambda ds, r: (_set(ds, "SOPClassUID", uids.XRAY_RADIATION_DOSE_SR), _set(ds, "Modality", "SR")))
_header_family("modality-ct", "skip", "Modality CT", lambda ds, r: _set(ds, "Modality", "CT"))
_header_family("dbt-projections", "skip", "SOP class of DBT source projections",
               lambda ds, r: _set(ds, "SOPClassUID", uids.BREAST_PROJECTION_FOR_PRESENTATION))
_header_family("laterality-garbage", "keep", "ImageLaterality 'Q', ViewPosition '???'",
               lambda ds, r: (_set(ds, "ImageLaterality", "Q"), _set(ds, "ViewPosition", "???")))
_header_family("patient-garbage", "keep", "a 64-char PatientID with odd characters",
               lambda ds, r: _set(ds, "PatientID", "\\/,;\"'" + "x" * 58))
_header_family("position-garbage", "keep", "ImagePositionPatient with 2 values",
               lambda ds, r: _set(ds, "ImagePositionPatient", ["1", "2"]))


def _drop(keyword):
    def edit(ds, rng):
        if keyword in ds:
            delattr(ds, keyword)

    return edit


_header_family("no-rows", "skip", "Rows missing", _drop("Rows"))
_header_family("no-photometric", "either", "PhotometricInterpretation missing (type 1)", _drop("PhotometricInterpretation"))


def _per_frame_cut(ds, rng):
    seq = ds.get("PerFrameFunctionalGroupsSequence")
    if seq is None or len(seq) < 2:
        raise ValueError("not an enhanced multi-frame file")
    ds.PerFrameFunctionalGroupsSequence = Sequence(list(seq)[:1])


_header_family("per-frame-short", "either", "PerFrameFunctionalGroupsSequence with 1 item for N frames", _per_frame_cut)


@family("deep-sequence", "either", "a private sequence nested 3000 levels deep")
def _deep_sequence(data, rng):
    return insert_in_dataset(data, nested_sequence(3000))


@family("many-elements", "keep", "20 000 private elements in the header")
def _many_elements(data, rng):
    creator = _explicit(0x0011, 0x0010, b"LO", b"FUZZ")
    body = b"".join(_explicit(0x0011, 0x1000 + i, b"LO", b"abcd") for i in range(20000) if 0x1000 + i <= 0xFFFF)
    return insert_in_dataset(data, creator + body)


# --------------------------------------------------------------------------- non-DICOM bytes


def _png_bytes() -> bytes:
    raw = b"".join(b"\0" + bytes(range(8)) for _ in range(8))

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


NOT_DICOM: dict[str, Callable[[np.random.Generator], bytes]] = {
    "empty": lambda rng: b"",
    "one-byte": lambda rng: b"\0",
    "random-bytes": lambda rng: rng.bytes(int(rng.integers(1, 5000))),
    "text": lambda rng: b"patient list exported 2011-03-04\nnothing to see\n" * 20,
    "png-named-dcm": lambda rng: _png_bytes(),
    "zip-named-dcm": lambda rng: b"PK\x03\x04" + rng.bytes(200),
    "dicm-then-garbage": lambda rng: b"\0" * 128 + b"DICM" + rng.bytes(int(rng.integers(0, 3000))),
    "dicm-only": lambda rng: b"\0" * 128 + b"DICM",
    "preamble-only": lambda rng: b"\0" * 128,
    "huge-element-length": lambda rng: (b"\0" * 128 + b"DICM"
                                        + struct.pack("<HH2sHI", 2, 1, b"OB", 0, 0xFFFFFFF0) + rng.bytes(64)),
    "html-error-page": lambda rng: b"<html><body>502 Bad Gateway</body></html>\n",
}


@dataclass
class Mutant:
    name: str  # file name to write
    family: str
    expect: str  # skip | either | keep | ok (unmutated copy of a good seed)
    seed: str  # seed file name ("" for seed-free cases)
    data: bytes


def mutate(seed_name: str, data: bytes, family_name: str, rng: np.random.Generator) -> Mutant | None:
    fam = FAMILIES[family_name]
    out = fam.fn(data, rng)
    if out is None or out == data:
        return None
    expect = fam.expect
    if family_name == "flip-pixels" and is_encapsulated(data):
        expect = "either"  # a flipped byte in a JPEG 2000 stream may well stop the decoder
    if family_name.startswith("ts-") and is_encapsulated(data):
        expect = "either"  # decoders sniff the stream: J2K labelled as JPEG still decodes
    return Mutant(name="", family=family_name, expect=expect, seed=seed_name, data=out)


def not_dicom(name: str, rng: np.random.Generator) -> Mutant:
    return Mutant(name="", family=name, expect="skip", seed="", data=NOT_DICOM[name](rng))


def header_only(data: bytes, keep_pixels: int = 4096) -> bytes:
    """The header plus the first ``keep_pixels`` bytes of the pixel data: a large file's
    stand-in that exercises the header checks without a slow decode."""
    start = pixel_value_offset(data)
    return data if start < 0 else data[: start + keep_pixels]
