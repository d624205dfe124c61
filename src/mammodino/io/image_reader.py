"""PNG, TIFF, JPEG, PGM and NPY mammograms (already-converted archives; mini-MIAS is PGM).

These formats carry no VOI, photometric or laterality tags, so:
- grey levels are scaled by the smallest bit depth that holds the data (8, 10, 12, 14 or
  16 bits; a 16-bit PNG holding 12-bit values would otherwise be near black); float NPY in
  [0, 1] is kept, other float data is min-max scaled;
- polarity is checked: when the image border (mostly air on a mammogram) is brighter than
  the middle, the file was saved MONOCHROME1-style and is inverted (``meta["inverted"]``);
- colour files are reduced to grey (identical channels: one channel; else luminance);
- a 3-D TIFF / NPY ``(Z, H, W)`` is a DBT volume.
The pixel count is checked from the file header before anything is decoded.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from mammodino.errors import SkipFile
from mammodino.io.dicom_reader import DEFAULT_MAX_PIXELS
from mammodino.io.types import MammoImage, empty_meta
from mammodino.tissue.film import border_lines, local_std
from mammodino.tissue.segmentation import downsample

IMAGE_EXTENSIONS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy",
                    ".jpg": "jpeg", ".jpeg": "jpeg", ".pgm": "pnm", ".pnm": "pnm"}


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS, dtype="float32") -> MammoImage:
    """PNG/TIFF/JPEG/NPY -> :class:`MammoImage` (float32 [0, 1], or uint16 0..65535 with
    ``dtype="uint16"``). Unreadable or unusable files raise SkipFile."""
    path = Path(path)
    fmt = IMAGE_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise SkipFile(f"unsupported image format ({path.suffix or 'no extension'})")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkipFile(f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise SkipFile("empty file (0 bytes)")
    if fmt == "npy":
        arr = _read_npy(path, max_pixels)
    elif fmt == "tiff":
        arr = _read_tiff(path, max_pixels)
    else:
        _check_header_size(path, fmt, max_pixels)
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise SkipFile(f"not a readable {fmt.upper()} file (corrupt or truncated)")
    arr = _to_grey(arr, fmt)
    if arr.size == 0 or min(arr.shape[-2:]) == 0:
        raise SkipFile(f"zero-sized image ({' x '.join(str(s) for s in arr.shape)})")
    unit = _to_unit(arr)
    del arr  # in place from here on: the peak stays near 6 bytes per pixel (check_memory)
    inverted = _looks_inverted(unit if unit.ndim == 2 else unit.max(axis=0))
    if inverted:
        np.subtract(np.float32(1.0), unit, out=unit)
    if np.dtype(dtype) == np.uint16:
        unit *= np.float32(65535.0)
        np.rint(unit, out=unit)
        pixels = unit.astype(np.uint16)
        del unit
    elif np.dtype(dtype) == np.float32:
        pixels = unit.astype(np.float32, copy=False)
    else:
        raise ValueError(f"dtype must be float32 or uint16, got {dtype}")
    meta = empty_meta(kind="dbt" if pixels.ndim == 3 else "ffdm", source_format=fmt)
    meta["inverted"] = inverted
    return MammoImage(pixels, meta)


# Peak bytes per pixel while reading into the cache's uint16 (decoded array + unit float32
# made in place + output), by bytes per decoded sample; measured on 4000 x 3000 PNG, JPEG,
# TIFF and NPY files (16-bit 6.2-6.3, 8-bit 8.1, 8-bit RGB 8.2). Extra colour channels add
# their decoded bytes. A worker refuses an image whose estimate exceeds 6 bytes x
# --max-pixels (1.2 GB at the default 200 M), before decoding it.
PEAK_BYTES_PER_PIXEL = {1: 9, 2: 7, 4: 11, 8: 15}
BYTES_PER_MAX_PIXEL = 6


def check_memory(shape, sample_bytes: int, max_pixels: int, channels: int = 1) -> None:
    """SkipFile when decoding an image of ``shape`` would need more memory than the budget."""
    n = 1
    for v in shape:
        n *= int(v)
    sample_bytes = int(sample_bytes)
    need = n * (PEAK_BYTES_PER_PIXEL.get(sample_bytes, 15) + (int(channels) - 1) * sample_bytes)
    budget = int(max_pixels) * BYTES_PER_MAX_PIXEL
    if need > budget:
        raise SkipFile(f"image too large to decode: {' x '.join(map(str, shape))} x {8 * sample_bytes}-bit needs "
                       f"~{need / 1e9:.1f} GB (limit {budget / 1e9:.1f} GB per worker; raise --max-pixels)")


def jpeg_frame_size(fh) -> tuple[int, int, int, int]:
    """(height, width, components, bits) from the SOF segment of a JPEG stream, walking
    every marker segment from the start (an APP segment may be megabytes long)."""
    if fh.read(2) != b"\xff\xd8":
        raise SkipFile("not a JPEG file (no SOI marker)")
    while True:
        byte = fh.read(1)
        if not byte:
            raise SkipFile("JPEG file without a frame header (truncated?)")
        if byte != b"\xff":
            continue
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            raise SkipFile("JPEG file without a frame header (truncated?)")
        m = marker[0]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:  # markers without a length
            continue
        if m in (0xD9, 0xDA):
            raise SkipFile("JPEG file without a frame header before its scan data")
        raw = fh.read(2)
        if len(raw) < 2:
            raise SkipFile("JPEG file truncated in a marker segment")
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            raise SkipFile(f"JPEG marker segment of impossible length {length}")
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            body = fh.read(6)
            if len(body) < 6:
                raise SkipFile("JPEG frame header truncated")
            bits, h, w, comps = body[0], *struct.unpack(">HH", body[1:5]), body[5]
            return h, w, comps, bits
        fh.seek(length - 2, 1)


def _check_header_size(path: Path, fmt: str, max_pixels: int) -> None:
    """Refuse absurd sizes, and images too large for a worker's memory, from the PNG/JPEG/PGM
    header before decoding."""
    with path.open("rb") as fh:
        if fmt == "png":
            head = fh.read(32)
            if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
                raise SkipFile("not a PNG file (bad signature)")
            w, h = struct.unpack(">II", head[16:24])
            bit_depth, colour = head[24], head[25]
            channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
            sample = 2 if bit_depth == 16 else 1
        elif fmt == "pnm":
            h, w, channels, maxval = pnm_size(fh)
            sample = 2 if maxval > 255 else 1
        else:
            h, w, channels, bits = jpeg_frame_size(fh)
            sample = 2 if bits > 8 else 1
    if h == 0 or w == 0:
        raise SkipFile(f"zero-sized image ({h} x {w})")
    if h * w > max_pixels:
        raise SkipFile(f"image too large: {h} x {w} = {h * w:,} pixels (limit {max_pixels:,})")
    check_memory((h, w), sample, max_pixels, channels=channels)


_PNM_CHANNELS = {b"P2": 1, b"P5": 1, b"P3": 3, b"P6": 3}


def pnm_size(fh) -> tuple[int, int, int, int]:
    """(height, width, channels, maxval) from a Netpbm (PGM/PPM) header: magic, width,
    height, maxval as ASCII words, ``#`` comments anywhere between them."""
    magic = fh.read(2)
    if magic not in _PNM_CHANNELS:
        raise SkipFile("not a PGM/PPM file (bad signature)")
    words: list[bytes] = []
    word = b""
    while len(words) < 3:
        ch = fh.read(1)
        if not ch:
            raise SkipFile("truncated PGM header")
        if ch == b"#":
            fh.readline()
        elif ch.isspace():
            if word:
                words.append(word)
                word = b""
        elif ch.isdigit() and len(word) < 12:
            word += ch
        else:
            raise SkipFile("not a PGM/PPM file (bad header)")
    w, h, maxval = (int(v) for v in words)
    return h, w, _PNM_CHANNELS[magic], maxval


def _read_npy(path: Path, max_pixels: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise SkipFile(f"not a plain numeric NPY array ({str(exc).splitlines()[0][:120]})") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt header
        raise SkipFile(f"unreadable NPY file ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uif" or arr.dtype.fields:
        raise SkipFile(f"NPY array of dtype {getattr(arr, 'dtype', '?')} is not a grey image")
    if arr.ndim not in (2, 3):
        raise SkipFile(f"NPY array of shape {arr.shape} is not an image ((H, W) or (Z, H, W))")
    if arr.size > max_pixels:
        raise SkipFile(f"image too large: {' x '.join(map(str, arr.shape))} = {arr.size:,} pixels (limit {max_pixels:,})")
    check_memory(arr.shape, arr.dtype.itemsize, max_pixels)
    try:
        return np.array(arr)
    except Exception as exc:  # noqa: BLE001 - memory map shorter than the header says
        raise SkipFile(f"truncated NPY file ({type(exc).__name__})") from None


def _read_tiff(path: Path, max_pixels: int) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(series.shape)
            n = int(np.prod(shape)) if shape else 0
            if n == 0:
                raise SkipFile(f"zero-sized image ({' x '.join(map(str, shape)) or 'empty'})")
            if n > max_pixels * (3 if shape[-1] in (3, 4) else 1):
                raise SkipFile(f"image too large: {' x '.join(map(str, shape))} = {n:,} values (limit {max_pixels:,})")
            check_memory(shape, np.dtype(series.dtype).itemsize, max_pixels)
            return series.asarray()
    except SkipFile:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SkipFile(f"not a readable TIFF file ({type(exc).__name__}: {str(exc)[:120]})") from None


def _to_grey(arr: np.ndarray, fmt: str) -> np.ndarray:
    arr = np.asarray(arr)
    if fmt != "npy" and arr.ndim == 3 and arr.shape[-1] in (3, 4):
        colour = arr[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2]):
            return colour[..., 0]
        # cv2 gives BGR, tifffile RGB; luminance weights barely differ for the two orders
        weights = np.array([0.114, 0.587, 0.299] if fmt in ("png", "jpeg", "pnm") else [0.299, 0.587, 0.114])
        return (colour.astype(np.float32) @ weights.astype(np.float32)).astype(np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        return arr[0]
    if arr.ndim not in (2, 3):
        raise SkipFile(f"array of shape {arr.shape} is not a grey image")
    return arr


def _to_unit(arr: np.ndarray) -> np.ndarray:
    """-> float32 [0, 1]."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype.kind in "ui":
        hi = int(arr.max()) if arr.size else 0
        lo = int(arr.min()) if arr.size else 0
        if lo < 0:
            return _minmax(arr.astype(np.float32))
        if arr.dtype.itemsize == 1:
            unit = arr.astype(np.float32)
            unit *= np.float32(1.0 / 255.0)
            return unit
        bits = max(8, int(np.ceil(np.log2(hi + 1))) if hi > 0 else 8)
        bits = min(b for b in (8, 10, 12, 14, 16, 32, 64) if b >= bits)
        unit = arr.astype(np.float32)  # float32 holds every 16-bit value exactly; float64 doubled the peak
        unit *= np.float32(1.0 / float(2**bits - 1))
        return unit
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        return arr
    return _minmax(arr)


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _looks_inverted(img2d: np.ndarray) -> bool:
    """Saved with air white, judged on a 512-px copy: the edge is bright AND the most common
    grey level (the air around the breast) is bright, AND either the centre is clearly darker
    than the edge or the texture sits in the dark half (:func:`_texture_ratio`); unless the
    bright edge is unexposed film with dark air inside it (:func:`_dark_inside_film_border`).
    The mode test keeps a film whose border strips are bright but whose air is dark the right
    way round; the film-border test one framed on all four sides, where the frame is the
    commonest level (26 of the 66 DDSM films in a 6-8 % frame were read inverted). The texture
    test finds what the centre test misses: an inverted detector image whose centre is mostly
    (white) air, as a MONOCHROME1 RSNA image saved as PNG without its inversion (4 of 11
    missed; boxes lost or wrong, one passing QC at box IoU 0.2). A film stored as optical
    density has a black border round its white air: judged again inside the black
    whole-side lines (0 -> 65 of 66 framed DDSM films so stored found; none of 1,339 real
    and phantom images the right way round read inverted)."""
    h, w = img2d.shape
    if min(h, w) < 8:
        return False
    small, _ = downsample(img2d)  # the segmentation's own 512-px copy
    if _air_white(small):
        return True
    # a film stored as optical density: its unexposed border is black, its air white; the
    # picture inside the black whole-side lines is judged as above
    box = _inside_border_lines(1.0 - small)
    return box is not None and _air_white(small[box])


def _air_white(small: np.ndarray) -> bool:
    """The tests of :func:`_looks_inverted` on one small picture."""
    if min(small.shape) < 8 or not _bright_edge_and_air(small) or _dark_inside_film_border(small):
        return False
    h, w = small.shape
    centre = small[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    return float(np.median(_edge(small))) > float(np.median(centre)) + 0.2 or _texture_ratio(small) < INVERTED_TEXTURE


def _edge(img: np.ndarray) -> np.ndarray:
    """The pixels of the outer 5 % of the shorter side, all four sides."""
    h, w = img.shape
    b = max(1, min(h, w) // 20)
    return np.concatenate([img[:b].ravel(), img[-b:].ravel(), img[:, :b].ravel(), img[:, -b:].ravel()])


def _bright_edge_and_air(small: np.ndarray) -> bool:
    hist, _ = np.histogram(small, bins=32, range=(0.0, 1.0))
    return float(np.median(_edge(small))) > 0.5 and (int(np.argmax(hist)) + 0.5) / 32 > 0.5


# Inside the bright whole-side lines of a film border, the picture's edge: its median is
# 0.00-0.17 on the 66 DDSM films framed on all sides or with a bright chest band (dark air
# inside the frame), 0.49-1.00 on inverted films and detector images (the white air peeled
# as if it were a border)
FRAMED_AIR = 0.35


def _dark_inside_film_border(small: np.ndarray) -> bool:
    """Bright unexposed film along whole sides (:func:`mammodino.tissue.film.border_lines`)
    with dark air inside it: a film the right way round."""
    box = _inside_border_lines(small)
    return box is not None and float(np.median(_edge(small[box]))) < FRAMED_AIR


def _inside_border_lines(small: np.ndarray) -> tuple[slice, slice] | None:
    """(rows, columns) of the picture inside bright, flat whole-side lines (a film border),
    or None without any."""
    frame = border_lines(cv2.GaussianBlur(small, (0, 0), 1.0))
    rows, cols = np.flatnonzero(~frame.all(axis=1)), np.flatnonzero(~frame.all(axis=0))
    if rows.size < 8 or cols.size < 8 or (rows.size == small.shape[0] and cols.size == small.shape[1]):
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


# The breast is textured, the air flat: the 75th percentile of the local standard deviation
# inside the bright half (Otsu, both halves eroded by 4 px so that their common edge does
# not count) over that inside the dark half. Measured: right way round 0.65-68 (RSNA 51-68,
# DDSM films in 15 recording variants 0.65-18, our FFDM and film phantoms 0.66-59; below 1
# only with a bright frame, a brighter curve or a crop); inverted RSNA 0.01-0.02, inverted
# DDSM films 0.06-1.56. Below this the dark half holds the breast.
INVERTED_TEXTURE = 0.25


def _texture_ratio(small: np.ndarray) -> float:
    """Texture of the bright half over that of the dark half of a small float copy."""
    lo, hi = np.percentile(small, (0.5, 99.5))
    unit = np.clip((small - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    blurred = cv2.GaussianBlur(unit, (0, 0), 1.0)
    std = local_std(blurred, 7)
    otsu, _ = cv2.threshold((blurred * 255.0).astype(np.uint8), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = (blurred > otsu / 255.0).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    bright_inside = cv2.erode(bright, disc).astype(bool)
    dark_inside = cv2.erode(1 - bright, disc).astype(bool)
    if not bright_inside.any() or not dark_inside.any():
        return 1.0
    return float(np.percentile(std[bright_inside], 75) + 1e-3) / float(np.percentile(std[dark_inside], 75) + 1e-3)
