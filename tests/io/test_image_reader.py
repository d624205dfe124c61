"""PNG / TIFF / NPY round trips (8 and 16 bit, volumes), polarity, and refusals."""

import cv2
import numpy as np
import pytest
import tifffile

from mammodino.errors import SkipFile
from mammodino.io.image_reader import read_image


def _breast(h=64, w=48, hi=255, dtype=np.uint8):
    """Half-disc of tissue on the left edge, dark air elsewhere."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float64)
    inside = ((yy - h / 2) / (h / 2.2)) ** 2 + (xx / (w * 0.7)) ** 2 <= 1
    img[inside] = 0.3 + 0.7 * (1 - xx[inside] / w)
    return np.rint(img * hi).astype(dtype)


def test_png_8_bit_round_trip(tmp_path):
    arr = _breast()
    cv2.imwrite(str(tmp_path / "a.png"), arr)
    img = read_image(tmp_path / "a.png")
    assert img.pixels.dtype == np.float32 and img.meta["kind"] == "ffdm"
    np.testing.assert_allclose(img.pixels, arr / 255.0, atol=1e-7)


def test_png_16_bit_round_trip_and_uint16_output(tmp_path):
    arr = _breast(hi=65535, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), arr)
    np.testing.assert_allclose(read_image(tmp_path / "b.png").pixels, arr / 65535.0, atol=1e-7)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png", dtype="uint16").pixels, arr)


def test_16_bit_png_holding_12_bit_values_is_scaled_by_12_bits(tmp_path):
    arr = _breast(hi=4095, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), arr)
    np.testing.assert_allclose(read_image(tmp_path / "c.png").pixels, arr / 4095.0, atol=1e-7)


@pytest.mark.parametrize("dtype,hi", [(np.uint8, 255), (np.uint16, 65535)])
def test_tiff_round_trip(tmp_path, dtype, hi):
    arr = _breast(hi=hi, dtype=dtype)
    tifffile.imwrite(tmp_path / "d.tif", arr)
    np.testing.assert_allclose(read_image(tmp_path / "d.tif").pixels, arr / float(hi), atol=1e-7)


def test_tiff_stack_is_a_volume(tmp_path):
    vol = np.stack([_breast(hi=65535, dtype=np.uint16)] * 3)
    tifffile.imwrite(tmp_path / "v.tiff", vol, photometric="minisblack")
    img = read_image(tmp_path / "v.tiff")
    assert img.pixels.shape == (3, 64, 48) and img.meta["kind"] == "dbt"


def test_npy_float_and_integer_round_trip(tmp_path):
    f = _breast().astype(np.float32) / 255
    np.save(tmp_path / "f.npy", f)
    np.testing.assert_allclose(read_image(tmp_path / "f.npy").pixels, f)
    vol = np.stack([_breast(hi=65535, dtype=np.uint16)] * 2)
    np.save(tmp_path / "v.npy", vol)
    img = read_image(tmp_path / "v.npy")
    assert img.pixels.shape == (2, 64, 48)
    np.testing.assert_allclose(img.pixels, vol / 65535.0, atol=1e-7)


def test_npy_with_objects_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SkipFile, match="NPY"):
        read_image(tmp_path / "o.npy")


def test_inverted_png_is_turned_tissue_bright(tmp_path):
    arr = _breast()
    cv2.imwrite(str(tmp_path / "inv.png"), 255 - arr)
    img = read_image(tmp_path / "inv.png")
    assert img.meta["inverted"] is True
    np.testing.assert_allclose(img.pixels, arr / 255.0, atol=1e-6)


def test_film_with_bright_borders_is_not_inverted(tmp_path):
    """Digitised film (MIAS/DDSM style): bright unexposed film edges on three sides and a
    scanner strip, dark air inside them. The border is bright, but the image is not
    MONOCHROME1-style and must keep its polarity."""
    arr = _breast(h=200, w=160)
    arr[:14] = 250
    arr[:, -16:] = 245
    arr[-12:] = 240
    arr[:, :4] = 255  # scanner edge strip
    cv2.imwrite(str(tmp_path / "film.png"), arr)
    img = read_image(tmp_path / "film.png")
    assert img.meta["inverted"] is False
    np.testing.assert_allclose(img.pixels, arr / 255.0, atol=1e-7)


def test_8_bit_film_scan_dimensions_and_scale(shared_data):
    """A real 8-bit digitised film (DDSM, 960 x 480) reads at its own scale, tissue bright."""
    path = next((shared_data / "ddsm_tissue" / "test" / "fgt_seg").glob("*.png"), None)
    if path is None:
        pytest.skip("no DDSM film under ddsm_tissue/test/fgt_seg")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    img = read_image(path)
    assert raw.dtype == np.uint8 and img.pixels.shape == raw.shape and img.meta["inverted"] is False
    np.testing.assert_allclose(img.pixels, raw / 255.0, atol=1e-7)


def test_grey_rgb_png_is_one_channel(tmp_path):
    arr = _breast()
    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([arr] * 3))
    np.testing.assert_allclose(read_image(tmp_path / "rgb.png").pixels, arr / 255.0, atol=1e-7)


def test_truncated_png_and_bad_signature(tmp_path):
    arr = _breast(256, 256)
    cv2.imwrite(str(tmp_path / "t.png"), arr)
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(SkipFile, match="corrupt or truncated"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "fake.png").write_bytes(b"hello, not a png at all, just text" * 4)
    with pytest.raises(SkipFile, match="not a PNG"):
        read_image(tmp_path / "fake.png")


def test_size_limit_from_png_header_before_decoding(tmp_path):
    cv2.imwrite(str(tmp_path / "s.png"), _breast())
    with pytest.raises(SkipFile, match="too large"):
        read_image(tmp_path / "s.png", max_pixels=1000)


def test_empty_and_zero_sized(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(SkipFile, match="empty file"):
        read_image(tmp_path / "e.png")
    np.save(tmp_path / "z.npy", np.zeros((0, 10), np.uint8))
    with pytest.raises(SkipFile, match="zero-sized"):
        read_image(tmp_path / "z.npy")


@pytest.mark.parametrize("hi,bits", [(4095, 12), (16383, 14), (1023, 10)])
def test_tiff_holding_fewer_bits_than_16_is_scaled_by_its_bit_depth(tmp_path, hi, bits):
    """Film scanners write 12-bit (Lumisys) or 14-bit values in 16-bit TIFFs."""
    arr = _breast(hi=hi, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", arr)
    np.testing.assert_allclose(read_image(tmp_path / "s.tif").pixels, arr / float(2**bits - 1), atol=1e-7)


def test_pgm_as_mini_mias_writes_it(tmp_path):
    """mini-MIAS is 8-bit binary PGM with a comment in its header; 16-bit PGM holding 12-bit
    values is scaled by 12 bits like a PNG."""
    arr = _breast(128, 96)
    body = b"P5\n# mini-MIAS style\n96 128\n255\n" + arr.tobytes()
    (tmp_path / "mdb001.pgm").write_bytes(body)
    np.testing.assert_allclose(read_image(tmp_path / "mdb001.pgm").pixels, arr / 255.0, atol=1e-7)
    deep = _breast(128, 96, hi=4095, dtype=np.uint16)
    (tmp_path / "deep.pgm").write_bytes(b"P5 96 128 4095\n" + deep.astype(">u2").tobytes())
    np.testing.assert_allclose(read_image(tmp_path / "deep.pgm").pixels, deep / 4095.0, atol=1e-6)
    with pytest.raises(SkipFile, match="too large"):
        read_image(tmp_path / "mdb001.pgm", max_pixels=1000)  # from the header, before decoding
    (tmp_path / "fake.pgm").write_bytes(b"P5\n96 abc\n255\n" + arr.tobytes())
    with pytest.raises(SkipFile, match="bad header"):
        read_image(tmp_path / "fake.pgm")
    (tmp_path / "cut.pgm").write_bytes(b"P5\n# only a comment")
    with pytest.raises(SkipFile, match="truncated PGM header"):
        read_image(tmp_path / "cut.pgm")
