"""VOI windows and LUTs: known answers from the DICOM formulas, and agreement with pydicom."""

import math

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from mammodino.io.voi import GreyParams, display_values, lut_transform, window


def test_linear_known_answers():
    # c=10, w=5: c'=9.5, w'=4, ramp from 7.5 (exclusive) to 11.5
    y = window([7.0, 7.5, 8.5, 9.5, 10.5, 11.5, 12.0], 10, 5, "LINEAR")
    np.testing.assert_allclose(y, [0, 0, 0.25, 0.5, 0.75, 1.0, 1.0])


def test_linear_full_12_bit_range():
    y = window([0, 2047.5, 4095, 4096], 2048, 4096, "LINEAR")
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0, 1.0])


def test_linear_exact_known_answers():
    y = window([7, 8, 10, 11, 12, 13], 10, 4, "LINEAR_EXACT")
    np.testing.assert_allclose(y, [0, 0, 0.5, 0.75, 1.0, 1.0])


def test_sigmoid_known_answers():
    y = window([90, 100, 110], 100, 40, "SIGMOID")
    e = 1 / (1 + math.exp(-1))
    np.testing.assert_allclose(y, [1 - e, 0.5, e], rtol=1e-12)


def test_window_width_one_is_a_step():
    np.testing.assert_allclose(window([9, 9.5, 10, 11], 10, 1, "LINEAR"), [0, 0, 1, 1])


@pytest.mark.parametrize("bad", [("LINEAR", 0.5), ("SIGMOID", 0), ("LINEAR_EXACT", -1), ("GAMMA", 10)])
def test_invalid_windows_are_refused(bad):
    function, width = bad
    with pytest.raises(ValueError):
        window([1, 2], 10, width, function)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_agrees_with_pydicom_apply_windowing(function):
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 12
    ds.PixelRepresentation = 0
    ds.WindowCenter = [1802.31, 2020.7]
    ds.WindowWidth = [1091.97, 1091.97]
    ds.VOILUTFunction = function
    x = np.arange(0, 4096, dtype=np.float64)
    theirs = apply_windowing(x.copy(), ds) / 4095.0  # output range 0..2**BitsStored-1
    ours = window(x, 1802.31, 1091.97, function)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_voi_lut_is_scaled_by_its_own_range():
    # 4 entries starting at stored value 100, declared 16 bit but filled with 12-bit values
    y = lut_transform([50, 100, 101, 102, 103, 500], (4, 100, 16), [0, 1000, 2000, 4000])
    np.testing.assert_allclose(y, [0, 0, 0.25, 0.5, 1.0, 1.0])


def test_rescale_then_window_then_invert():
    params = GreyParams(slope=2.0, intercept=-5.0, center=15.0, width=10.0, function="LINEAR_EXACT",
                        monochrome1=True)
    # stored 10 -> 15 (window centre) -> 0.5 -> inverted 0.5; stored 12 -> 19 -> 0.9 -> 0.1
    np.testing.assert_allclose(display_values(np.array([10, 12, 0]), params), [0.5, 0.1, 1.0])


def test_no_voi_uses_the_data_range_of_real_pixels_only():
    values = np.arange(8)
    weights = np.array([0, 0, 5, 5, 5, 5, 0, 0])  # only 2..5 occur in the image
    y = display_values(values, GreyParams(), weights)
    np.testing.assert_allclose(y[2:6], [0, 1 / 3, 2 / 3, 1])


def test_for_processing_is_log_then_percentile_window():
    values = np.array([1.0, 10.0, 100.0, 1000.0])
    y = display_values(values, GreyParams(for_processing=True), np.ones(4))
    assert y[0] == 0.0 and y[-1] == 1.0
    assert np.all(np.diff(y) > 0)
    # the log spreads decades evenly: middle steps nearly equal
    d = np.diff(y)
    assert abs(d[1] - d[2]) < 0.1
