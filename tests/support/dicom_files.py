"""Small, standard-conforming mammography DICOM files with chosen tags, for the tests.

Known-answer files for every branch of the reader: windows, VOI functions, MONOCHROME1,
padding, rescale, FOR PROCESSING, enhanced multi-frame DBT with functional groups,
one-file-per-slice DBT. What a file holds is a :class:`DicomSpec`; writing it is the
package's one DICOM writer (:func:`mammodino.synth.dicom_writer.save_dataset`).
Native (uncompressed) explicit VR little endian only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mammodino.io import uids
from mammodino.io.uids import BREAST_TOMOSYNTHESIS, MAMMO_FOR_PRESENTATION, MAMMO_FOR_PROCESSING  # noqa: F401
from mammodino.synth.dicom_writer import VIEW_CODES, code_item, save_dataset

Window = tuple[float, float]


@dataclass
class DicomSpec:
    """The tags of one test file; every field has the default of a plain FFDM CC image."""

    photometric: str = "MONOCHROME2"
    bits_stored: int | None = None
    window: Window | list[Window] | None = None
    voi_function: str | None = None
    rescale: tuple[float, float] | None = None
    padding_value: int | None = None
    laterality: str | None = "L"
    view: str | None = "CC"
    view_as_code: bool = False
    patient_id: str = "ANON-0001"
    patient_name: str = "ANONYMOUS"
    study_uid: str | None = None
    series_uid: str | None = None
    sop_class: str = MAMMO_FOR_PRESENTATION
    for_processing: bool = False
    instance_number: int = 1
    image_position: tuple[float, float, float] | None = None
    modality: str = "MG"
    per_frame_windows: list[Window] | None = None

    @property
    def windows(self) -> list[Window]:
        return [self.window] if isinstance(self.window, tuple) else list(self.window or [])


def write_mammo_dicom(path, pixels: np.ndarray, **tags) -> Path:
    """Write ``pixels`` ((H, W) single frame or (Z, H, W) multi-frame; uint8/uint16/int16) as
    DICOM with the tags of ``DicomSpec(**tags)``.

    A 3-D array is written as an enhanced multi-frame image: windows go into
    Shared/PerFrame Functional Groups (``per_frame_windows`` gives one (center, width) per
    frame), as Breast Tomosynthesis Image Storage unless ``sop_class`` says otherwise.
    """
    spec = DicomSpec(**tags)
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, uint16 or int16, got {pixels.dtype}")
    ds = _header(spec, _sop_class(spec, multi=pixels.ndim == 3))
    _pixel_module(ds, pixels, spec)
    if pixels.ndim == 3:
        _functional_groups(ds, pixels.shape[0], spec)
    else:
        _single_frame_voi(ds, spec)
    ds.PixelData = pixels.tobytes()
    return save_dataset(ds, Path(path))


def _sop_class(spec: DicomSpec, multi: bool) -> str:
    if multi and spec.sop_class == MAMMO_FOR_PRESENTATION:
        return BREAST_TOMOSYNTHESIS
    if spec.for_processing and spec.sop_class == MAMMO_FOR_PRESENTATION:
        return MAMMO_FOR_PROCESSING
    return spec.sop_class


def _header(spec: DicomSpec, sop_class: str) -> Dataset:
    """Identity, intent, laterality, view and position."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uids.make_uid()
    ds.Modality = spec.modality
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.StudyInstanceUID = spec.study_uid or uids.make_uid()
    ds.SeriesInstanceUID = spec.series_uid or uids.make_uid()
    ds.InstanceNumber = spec.instance_number
    ds.PresentationIntentType = "FOR PROCESSING" if spec.for_processing else "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    if spec.laterality:
        ds.ImageLaterality = spec.laterality
    if spec.view and spec.view_as_code:
        code = VIEW_CODES.get(spec.view.upper())
        if code:
            ds.ViewCodeSequence = Sequence([code_item(code[0], "SRT", code[1])])
    elif spec.view:
        ds.ViewPosition = spec.view
    if spec.image_position is not None:
        ds.ImagePositionPatient = [float(v) for v in spec.image_position]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return ds


def _pixel_module(ds: Dataset, pixels: np.ndarray, spec: DicomSpec) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.Rows, ds.Columns = int(pixels.shape[-2]), int(pixels.shape[-1])
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = spec.bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if spec.padding_value is not None:
        ds.PixelPaddingValue = int(spec.padding_value)


def _single_frame_voi(ds: Dataset, spec: DicomSpec) -> None:
    """Rescale and window(s) as top-level tags."""
    if spec.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = spec.rescale
        ds.RescaleType = "US"
    windows = spec.windows
    if windows:
        ds.WindowCenter = [float(c) for c, _ in windows] if len(windows) > 1 else float(windows[0][0])
        ds.WindowWidth = [float(w) for _, w in windows] if len(windows) > 1 else float(windows[0][1])
        if spec.voi_function:
            ds.VOILUTFunction = spec.voi_function


def _functional_groups(ds: Dataset, n_frames: int, spec: DicomSpec) -> None:
    """Rescale and window in the shared groups (or one window per frame), frame positions."""
    ds.NumberOfFrames = int(n_frames)
    shared = Dataset()
    if spec.rescale is not None:
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept = spec.rescale
        pvt.RescaleType = "US"
        shared.PixelValueTransformationSequence = Sequence([pvt])
    if spec.windows and spec.per_frame_windows is None:
        shared.FrameVOILUTSequence = Sequence([_voi_item(spec.windows[0], spec.voi_function)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in range(n_frames):
        item = Dataset()
        content = Dataset()
        content.InStackPositionNumber = z + 1
        item.FrameContentSequence = Sequence([content])
        if spec.per_frame_windows is not None:
            item.FrameVOILUTSequence = Sequence([_voi_item(spec.per_frame_windows[z], spec.voi_function)])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)


def _voi_item(window: Window, function: str | None) -> Dataset:
    item = Dataset()
    item.WindowCenter = float(window[0])
    item.WindowWidth = float(window[1])
    if function:
        item.VOILUTFunction = function
    return item


def write_dbt_series(folder, volume: np.ndarray, *, shuffle_names: bool = True, **tags) -> list[Path]:
    """One file per slice of ``volume`` (Z, H, W) in ``folder``, one SeriesInstanceUID, Breast
    Tomosynthesis SOP class, ImagePositionPatient stepping 1 mm. With ``shuffle_names`` the file
    names do not sort in slice order (the reader must order by position/InstanceNumber)."""
    folder = Path(folder)
    series = tags.pop("series_uid", None) or uids.make_uid()
    study = tags.pop("study_uid", None) or uids.make_uid()
    z = volume.shape[0]
    order = np.random.default_rng(0).permutation(z) if shuffle_names else np.arange(z)
    paths = []
    for k in range(z):
        name = f"slice_{int(order[k]):03d}.dcm"
        paths.append(write_mammo_dicom(
            folder / name, volume[k], sop_class=BREAST_TOMOSYNTHESIS, series_uid=series, study_uid=study,
            instance_number=k + 1, image_position=(0.0, 0.0, float(k)), **tags))
    return paths
