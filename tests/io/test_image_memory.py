"""Memory bounds checked from the header, before decoding, for every image format."""

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from mammodino.errors import SkipFile
from mammodino.io.image_reader import PEAK_BYTES_PER_PIXEL, read_image


def _jpeg_with_big_app_segment(h: int, w: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    app = b"".join(b"\xff\xe1" + struct.pack(">H", 65000) + b"\x00" * 64998 for _ in range(3))  # 195 kB of APP1
    return bytes(data[:2]) + app + bytes(data[2:])


def test_jpeg_frame_found_past_large_app_segments(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_jpeg_with_big_app_segment(16000, 16000))
    with pytest.raises(SkipFile, match="16000 x 16000"):
        read_image(path, dtype=np.uint16)


def test_jpeg_without_frame_header_is_a_clear_skip(tmp_path):
    path = tmp_path / "nosof.jpg"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", 10) + b"\x00" * 8 + b"\xff\xd9")
    with pytest.raises(SkipFile, match="frame header"):
        read_image(path)


def _png_header(h: int, w: int, bit_depth: int = 16) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_png_under_the_pixel_limit_but_over_the_memory_budget(tmp_path):
    path = tmp_path / "big16.png"
    path.write_bytes(_png_header(14000, 14000))  # 196 M pixels: under 200 M, but ~1.4 GB to decode
    with pytest.raises(SkipFile, match="too large to decode.*16-bit.*limit 1.2 GB per worker"):
        read_image(path, dtype=np.uint16)


def test_npy_over_the_memory_budget(tmp_path):
    path = tmp_path / "big.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(12000, 12000))  # sparse file
    del arr
    with pytest.raises(SkipFile, match="too large to decode"):
        read_image(path, dtype=np.uint16)


MEASURE = """
import resource, sys
import numpy as np
from mammodino.io.image_reader import read_image
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = read_image(sys.argv[1], dtype=np.uint16)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024 / img.pixels.size)
"""


@pytest.mark.parametrize("ext, bits", [(".png", 16), (".png", 8), (".npy", 16)])
def test_measured_peak_stays_within_the_documented_bytes_per_pixel(tmp_path, ext, bits):
    yy, xx = np.mgrid[0:3000, 0:2400]
    img = (np.clip(1.0 - ((xx / 2000.0) ** 2 + ((yy - 1500) / 1400.0) ** 2), 0, 1) * 60000).astype(np.uint16)
    img = img if bits == 16 else (img >> 8).astype(np.uint8)
    path = tmp_path / f"a{ext}"
    np.save(path, img) if ext == ".npy" else cv2.imwrite(str(path), img)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True, env=env)
    per_pixel = float(out.stdout.strip())
    assert per_pixel <= PEAK_BYTES_PER_PIXEL[bits // 8] + 0.5, per_pixel
