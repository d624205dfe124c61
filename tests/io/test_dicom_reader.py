"""DICOM reader: known grey levels from files built with pydicom, every refusal with its reason,
DBT (enhanced multi-frame and one file per slice), and the real OpenREM fixtures."""

import math

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, generate_uid

from mammodino.errors import SkipFile
from mammodino.io.dicom_reader import FOR_PROCESSING_REASON, read_dicom, read_dicom_series
from support.dicom_files import write_dbt_series, write_mammo_dicom


def _ramp(h=8, w=8, hi=4095):
    return np.linspace(0, hi, h * w).round().astype(np.uint16).reshape(h, w)


def test_linear_window_known_values(tmp_path):
    px = np.array([[0, 1000], [2047, 4095]], dtype=np.uint16)
    path = write_mammo_dicom(tmp_path / "a.dcm", px, window=(2048, 4096), voi_function="LINEAR")
    img = read_dicom(path)
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (2, 2)
    expected = np.clip((px - 2047.5) / 4095 + 0.5, 0, 1)
    np.testing.assert_allclose(img.pixels, expected, atol=1e-6)


def test_sigmoid_monochrome1_is_inverted(tmp_path):
    px = np.array([[90, 100, 110, 0]], dtype=np.uint16)
    path = write_mammo_dicom(tmp_path / "s.dcm", px, photometric="MONOCHROME1", window=(100, 40),
                             voi_function="SIGMOID")
    y = read_dicom(path).pixels[0]
    e = 1 / (1 + math.exp(-1))
    # high stored values are dark in MONOCHROME1: 110 -> sigmoid e -> 1 - e
    np.testing.assert_allclose(y[:3], [e, 0.5, 1 - e], atol=1e-6)
    assert y[3] > 0.99  # stored 0 is the brightest


def test_first_of_several_window_pairs_is_used(tmp_path):
    px = np.array([[10, 20]], dtype=np.uint16)
    path = write_mammo_dicom(tmp_path / "w.dcm", px, window=[(15, 10), (1000, 10)], voi_function="LINEAR_EXACT")
    np.testing.assert_allclose(read_dicom(path).pixels[0], [0.0, 1.0])


def test_rescale_slope_intercept_before_window(tmp_path):
    px = np.array([[10, 12]], dtype=np.uint16)
    path = write_mammo_dicom(tmp_path / "r.dcm", px, rescale=(2.0, -5.0), window=(15, 10),
                             voi_function="LINEAR_EXACT")
    np.testing.assert_allclose(read_dicom(path).pixels[0], [0.5, 0.9], atol=1e-6)


def test_padding_becomes_background_zero(tmp_path):
    # MONOCHROME1: padding value 4095 would otherwise become... and padding 0 would be white
    px = np.array([[0, 0, 1000, 3000]], dtype=np.uint16)
    path = write_mammo_dicom(tmp_path / "p.dcm", px, photometric="MONOCHROME1", window=(2048, 4096),
                             padding_value=0, bits_stored=12)
    y = read_dicom(path).pixels[0]
    assert y[0] == 0.0 and y[1] == 0.0
    assert y[2] > y[3] > 0  # tissue bright, denser (lower stored) brighter


def test_signed_pixels_and_no_window_use_the_data_range(tmp_path):
    px = np.array([[-100, 0, 100, 300]], dtype=np.int16)
    path = write_mammo_dicom(tmp_path / "i.dcm", px, window=None)
    np.testing.assert_allclose(read_dicom(path).pixels[0], [0, 0.25, 0.5, 1.0], atol=1e-6)


def test_uint16_output_matches_float(tmp_path):
    path = write_mammo_dicom(tmp_path / "u.dcm", _ramp(), window=(2048, 4096))
    f = read_dicom(path).pixels
    u = read_dicom(path, dtype="uint16").pixels
    assert u.dtype == np.uint16
    np.testing.assert_allclose(u / 65535.0, f, atol=1 / 65535)


def test_tags_patient_and_view_code(tmp_path):
    path = write_mammo_dicom(tmp_path / "t.dcm", _ramp(), laterality="R", view="MLO", view_as_code=True,
                             patient_id="MRN-1", window=(2048, 4096))
    meta = read_dicom(path).meta
    assert meta["laterality"] == "R" and meta["laterality_source"] == "tag"
    assert meta["view"] == "MLO"  # from ViewCodeSequence 'medio-lateral oblique'
    assert meta["patient_id"] == "MRN-1" and meta["kind"] == "ffdm"


def test_for_processing_skipped_with_exact_reason_and_read_with_flag(tmp_path):
    path = write_mammo_dicom(tmp_path / "raw.dcm", _ramp(16, 16, 16000), for_processing=True,
                             photometric="MONOCHROME1")
    with pytest.raises(SkipFile) as err:
        read_dicom(path)
    assert err.value.reason == FOR_PROCESSING_REASON == "FOR PROCESSING (raw detector data)"
    img = read_dicom(path, include_for_processing=True)
    assert img.meta["for_processing"] is True
    assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0
    # MONOCHROME1 raw: the largest stored value is the darkest
    assert img.pixels[0, 0] > img.pixels[-1, -1]


def test_for_processing_from_image_type_only(tmp_path):
    path = write_mammo_dicom(tmp_path / "it.dcm", _ramp(), window=(2048, 4096))
    ds = pydicom.dcmread(path)
    del ds.PresentationIntentType
    ds.ImageType = ["ORIGINAL", "PRIMARY", "FOR PROCESSING"]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(SkipFile, match=r"^FOR PROCESSING \(raw detector data\)$"):
        read_dicom(path)


def test_enhanced_multiframe_dbt_with_per_frame_windows(tmp_path):
    vol = np.stack([np.full((6, 5), 100, np.uint16), np.full((6, 5), 100, np.uint16),
                    np.full((6, 5), 100, np.uint16)])
    windows = [(100, 10), (110, 10), (90, 10)]  # the same stored value: 0.5, 0, 1 after LINEAR_EXACT
    path = write_mammo_dicom(tmp_path / "dbt.dcm", vol, per_frame_windows=windows, voi_function="LINEAR_EXACT")
    img = read_dicom(path)
    assert img.pixels.shape == (3, 6, 5)
    assert img.meta["kind"] == "dbt"
    np.testing.assert_allclose(img.pixels[:, 0, 0], [0.5, 0.0, 1.0])


def test_enhanced_multiframe_shared_groups(tmp_path):
    vol = np.stack([_ramp() for _ in range(4)])
    path = write_mammo_dicom(tmp_path / "dbt2.dcm", vol, window=(2048, 4096), rescale=(1.0, 0.0))
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds and "SharedFunctionalGroupsSequence" in ds
    img = read_dicom(path)
    ref = np.clip((_ramp() - 2047.5) / 4095 + 0.5, 0, 1)
    for z in range(4):
        np.testing.assert_allclose(img.pixels[z], ref, atol=1e-6)


def test_per_slice_series_is_stacked_in_position_order(tmp_path):
    vol = np.stack([np.full((8, 8), 100 * (z + 1), np.uint16) for z in range(5)])
    paths = write_dbt_series(tmp_path / "series", vol, window=(300, 600), voi_function="LINEAR_EXACT")
    img = read_dicom_series(paths)
    assert img.pixels.shape == (5, 8, 8) and img.meta["kind"] == "dbt"
    means = img.pixels.mean(axis=(1, 2))
    assert np.all(np.diff(means) > 0), means  # slice z has value 100 (z+1): sorted by position


def test_huge_header_is_refused_before_decoding(tmp_path):
    path = write_mammo_dicom(tmp_path / "big.dcm", _ramp())
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 60000, 60000
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(SkipFile, match="too large"):
        read_dicom(path)


def test_zero_frames_zero_rows_and_no_pixels(tmp_path):
    path = write_mammo_dicom(tmp_path / "z.dcm", np.stack([_ramp(), _ramp()]))
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 0
    ds.save_as(tmp_path / "frames0.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match="zero frames"):
        read_dicom(tmp_path / "frames0.dcm")

    ds = pydicom.dcmread(write_mammo_dicom(tmp_path / "r.dcm", _ramp()))
    ds.Rows = 0
    ds.save_as(tmp_path / "rows0.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match="zero-sized"):
        read_dicom(tmp_path / "rows0.dcm")

    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match="no pixel data"):
        read_dicom(tmp_path / "nopix.dcm")


def test_truncated_file(tmp_path):
    path = write_mammo_dicom(tmp_path / "full.dcm", _ramp(64, 64))
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 3000])
    with pytest.raises(SkipFile, match="truncated"):
        read_dicom(cut)
    header_only = tmp_path / "cut2.dcm"
    header_only.write_bytes(data[:200])
    with pytest.raises(SkipFile):
        read_dicom(header_only)


def test_random_bytes_and_empty_file(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(SkipFile, match="not a DICOM|unreadable DICOM"):
        read_dicom(junk)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(SkipFile, match="empty file"):
        read_dicom(empty)


def test_dose_report_and_colour_are_refused(tmp_path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match="structured report"):
        read_dicom(tmp_path / "sr.dcm")

    ds = pydicom.dcmread(write_mammo_dicom(tmp_path / "c.dcm", _ramp()))
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel = 3
    ds.save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match="colour"):
        read_dicom(tmp_path / "rgb.dcm")


def test_missing_jpeg_lossless_decoder_names_the_extra(tmp_path):
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLosslessSV1).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    ds = pydicom.dcmread(write_mammo_dicom(tmp_path / "j.dcm", _ramp()))
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jpegll.dcm", enforce_file_format=True)
    with pytest.raises(SkipFile, match=r"mammodino\[jpegls\]"):
        read_dicom(tmp_path / "jpegll.dcm")


# --------------------------------------------------------------------------- real fixtures


EXPECTED = {
    "MG-Im-GE_Seno_1_ForProcessing.dcm": FOR_PROCESSING_REASON,
    "MG-Im-GE-SenDS-scaled.dcm": FOR_PROCESSING_REASON,
    "MG-Im-Hologic-PropProj.dcm": "no pixel data (Secondary Capture Image Storage)",
    "MG-RDSR-Hologic_2D.dcm": "structured report (X-Ray Radiation Dose SR Storage), not an image",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_openrem_fixtures_are_refused_with_a_reason(dicom_headers_dir, name):
    with pytest.raises(SkipFile) as err:
        read_dicom(dicom_headers_dir / name)
    assert err.value.reason == EXPECTED[name]


def test_openrem_for_presentation_sigmoid_is_read(dicom_headers_dir):
    """The file has both a VOI LUT (a sampled sigmoid) and SIGMOID window pairs: like pydicom we
    prefer the LUT, which agrees with the first window pair to 1e-3."""
    from pydicom.pixels import apply_voi_lut

    path = dicom_headers_dir / "MG-Im-GE_Seno_1_ForPresentation.dcm"
    ds = pydicom.dcmread(path)
    img = read_dicom(path)
    assert img.pixels.shape == (1, 2)
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=float)
    theirs = (apply_voi_lut(ds.pixel_array, ds, prefer_lut=True).ravel() - lut.min()) / (lut.max() - lut.min())
    np.testing.assert_allclose(img.pixels.ravel(), theirs, atol=1e-6)
    stored = ds.pixel_array.astype(float).ravel()
    sigmoid = 1 / (1 + np.exp(-4 * (stored - 2262) / 380))  # first window pair, SIGMOID
    np.testing.assert_allclose(img.pixels.ravel(), sigmoid, atol=1e-3)
    assert img.meta["laterality"] == "L" and img.meta["view"] == "CC"


def test_openrem_for_processing_with_flag(dicom_headers_dir):
    img = read_dicom(dicom_headers_dir / "MG-Im-GE-SenDS-scaled.dcm", include_for_processing=True)
    assert img.pixels.shape == (4, 4)
    assert np.isfinite(img.pixels).all() and img.pixels.min() >= 0 and img.pixels.max() <= 1


def test_cbis_style_secondary_capture_film_gets_identity_from_patient_id(tmp_path):
    """CBIS-DDSM films: Secondary Capture, 16-bit MONOCHROME2, no ImageLaterality or
    ViewPosition; PatientID carries patient, side and view. The four views of one woman
    must share one patient id (-> one patient_key)."""
    from mammodino.io.uids import SECONDARY_CAPTURE

    film = np.full((64, 48), 3000, np.uint16)
    film[10:50, :30] = 30000
    ids = {}
    for side in ("LEFT", "RIGHT"):
        for view in ("CC", "MLO"):
            path = write_mammo_dicom(tmp_path / f"{side}_{view}.dcm", film, laterality=None, view=None,
                                     patient_id=f"Mass-Test_P_00173_{side}_{view}", sop_class=SECONDARY_CAPTURE)
            meta = read_dicom(path).meta
            assert (meta["laterality"], meta["view"]) == (side[0], view)
            ids[(side, view)] = meta["patient_id"]
    assert set(ids.values()) == {"P_00173"}


def test_plain_patient_id_is_kept_and_tags_win(tmp_path):
    film = np.full((64, 48), 3000, np.uint16)
    path = write_mammo_dicom(tmp_path / "a.dcm", film, laterality="R", view="CC",
                             patient_id="Calc-Test_P_00001_LEFT_MLO")
    meta = read_dicom(path).meta
    assert (meta["laterality"], meta["view"], meta["patient_id"]) == ("R", "CC", "P_00001")
    path = write_mammo_dicom(tmp_path / "b.dcm", film, patient_id="ANON-0042")
    assert read_dicom(path).meta["patient_id"] == "ANON-0042"


@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.uint16, 12), (np.uint16, 16)])
def test_secondary_capture_film_8_12_16_bit_without_window_uses_the_data_range(tmp_path, dtype, bits):
    """Digitised film as Secondary Capture MG (8-bit MIAS-style conversions, 12-in-16 and
    16-bit CBIS-DDSM): no window, so the data range maps to [0, 1], like any other MG file."""
    from mammodino.io.uids import SECONDARY_CAPTURE

    top = (1 << bits) - 1
    film = np.full((64, 48), top // 20, dtype)
    film[10:50, :30] = top // 2
    film[:, -4:] = top  # a bright unexposed border
    path = write_mammo_dicom(tmp_path / "f.dcm", film, laterality=None, view=None, bits_stored=bits,
                             patient_id="Calc-Test_P_00042_RIGHT_MLO", sop_class=SECONDARY_CAPTURE)
    img = read_dicom(path)
    assert img.pixels.shape == (64, 48)
    assert img.pixels.min() == pytest.approx(0.0, abs=1e-6) and img.pixels.max() == pytest.approx(1.0, abs=1e-6)
    assert img.pixels[30, 10] == pytest.approx((top // 2 - top // 20) / (top - top // 20), abs=1e-3)
    assert (img.meta["laterality"], img.meta["view"], img.meta["patient_id"]) == ("R", "MLO", "P_00042")


@pytest.mark.parametrize("tags, reason", [
    ({"Rows": 65535, "Columns": 65535}, "too large: 1 x 65535 x 65535"),
    ({"Rows": 65535, "Columns": 65535, "NumberOfFrames": "2147483647"}, "too large: 2147483647 x 65535 x 65535"),
    ({"NumberOfFrames": "2147483647"}, "too large: 2147483647 x 8 x 8"),
    ({"Rows": 14000, "Columns": 14000}, "truncated pixel data"),  # under the pixel limit: the data is too short
    ({"Rows": 14000, "Columns": 14000, "NumberOfFrames": "2"}, "too large: 2 x 14000 x 14000"),
])
def test_huge_declared_sizes_are_refused_before_any_allocation(tmp_path, tags, reason):
    import tracemalloc

    path = write_mammo_dicom(tmp_path / "big.dcm", _ramp())
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    tracemalloc.start()
    try:
        with pytest.raises(SkipFile, match=reason):
            read_dicom(path, dtype=np.uint16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak  # the header claims up to 9e18 bytes; nothing near it is allocated


def test_a_slice_series_declaring_huge_slices_is_refused_before_stacking(tmp_path):
    import tracemalloc

    paths = write_dbt_series(tmp_path / "series", np.stack([_ramp() for _ in range(4)]))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Rows, ds.Columns = 9000, 9000  # 81 M pixels per slice: each under the limit, the series over it
        ds.PixelData = b"\0" * 128
        ds.save_as(p, enforce_file_format=True)
    tracemalloc.start()
    try:
        with pytest.raises(SkipFile, match="too large|truncated"):
            read_dicom_series(paths, dtype=np.uint16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak
