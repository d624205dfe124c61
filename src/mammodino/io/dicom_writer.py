"""Write small, standard-conforming mammography DICOM files from arrays.

Used by the tests (known-answer files for every branch of the reader: windows, VOI
functions, MONOCHROME1, padding, FOR PROCESSING, enhanced multi-frame DBT with functional
groups, one-file-per-slice DBT) and handy for anyone who needs a DICOM mammogram without
patient data. Native (uncompressed) Explicit VR Little Endian only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MAMMO_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

_VIEW_CODES = {"CC": ("R-10242", "cranio-caudal"), "MLO": ("R-10226", "medio-lateral oblique"),
               "ML": ("R-10224", "medio-lateral"), "LM": ("R-10228", "latero-medial")}


def write_mammo_dicom(
    path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    window: tuple[float, float] | list[tuple[float, float]] | None = None,
    voi_function: str | None = None,
    rescale: tuple[float, float] | None = None,
    padding_value: int | None = None,
    laterality: str | None = "L",
    view: str | None = "CC",
    view_as_code: bool = False,
    patient_id: str = "ANON-0001",
    patient_name: str = "ANONYMOUS",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_class: str = MAMMO_FOR_PRESENTATION,
    for_processing: bool = False,
    instance_number: int = 1,
    image_position: tuple[float, float, float] | None = None,
    modality: str = "MG",
    per_frame_windows: list[tuple[float, float]] | None = None,
) -> Path:
    """Write ``pixels`` ((H, W) single frame or (Z, H, W) multi-frame; uint8/uint16/int16) as DICOM.

    A 3-D array is written as an enhanced multi-frame image: windows go into
    Shared/PerFrame Functional Groups (``per_frame_windows`` gives one (center, width) per
    frame), as Breast Tomosynthesis Image Storage unless ``sop_class`` says otherwise.
    """
    path = Path(path)
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, uint16 or int16, got {pixels.dtype}")
    multi = pixels.ndim == 3
    if multi and sop_class == MAMMO_FOR_PRESENTATION:
        sop_class = BREAST_TOMOSYNTHESIS
    if for_processing and sop_class == MAMMO_FOR_PRESENTATION:
        sop_class = MAMMO_FOR_PROCESSING

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.InstanceNumber = instance_number
    ds.PresentationIntentType = "FOR PROCESSING" if for_processing else "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    if laterality:
        ds.ImageLaterality = laterality
    if view and view_as_code:
        code = _VIEW_CODES.get(view.upper())
        if code:
            item = Dataset()
            item.CodeValue, item.CodeMeaning = code
            item.CodingSchemeDesignator = "SRT"
            ds.ViewCodeSequence = Sequence([item])
    elif view:
        ds.ViewPosition = view
    if image_position is not None:
        ds.ImagePositionPatient = [float(v) for v in image_position]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(pixels.shape[-2]), int(pixels.shape[-1])
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if padding_value is not None:
        ds.PixelPaddingValue = int(padding_value)

    windows = [window] if isinstance(window, tuple) else list(window or [])
    if multi:
        ds.NumberOfFrames = int(pixels.shape[0])
        shared = Dataset()
        if rescale is not None:
            pvt = Dataset()
            pvt.RescaleSlope, pvt.RescaleIntercept = rescale
            pvt.RescaleType = "US"
            shared.PixelValueTransformationSequence = Sequence([pvt])
        if windows and per_frame_windows is None:
            shared.FrameVOILUTSequence = Sequence([_voi_item(windows[0], voi_function)])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for z in range(pixels.shape[0]):
            item = Dataset()
            content = Dataset()
            content.InStackPositionNumber = z + 1
            item.FrameContentSequence = Sequence([content])
            if per_frame_windows is not None:
                item.FrameVOILUTSequence = Sequence([_voi_item(per_frame_windows[z], voi_function)])
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    else:
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
            ds.RescaleType = "US"
        if windows:
            ds.WindowCenter = [float(c) for c, _ in windows] if len(windows) > 1 else float(windows[0][0])
            ds.WindowWidth = [float(w) for _, w in windows] if len(windows) > 1 else float(windows[0][1])
            if voi_function:
                ds.VOILUTFunction = voi_function
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _voi_item(window, function) -> Dataset:
    item = Dataset()
    item.WindowCenter = float(window[0])
    item.WindowWidth = float(window[1])
    if function:
        item.VOILUTFunction = function
    return item


def write_dbt_series(folder, volume: np.ndarray, *, shuffle_names: bool = True, **kwargs) -> list[Path]:
    """One file per slice of ``volume`` (Z, H, W) in ``folder``, one SeriesInstanceUID, Breast
    Tomosynthesis SOP class, ImagePositionPatient stepping 1 mm. With ``shuffle_names`` the file
    names do not sort in slice order (the reader must order by position/InstanceNumber)."""
    folder = Path(folder)
    series = kwargs.pop("series_uid", None) or generate_uid()
    study = kwargs.pop("study_uid", None) or generate_uid()
    z = volume.shape[0]
    order = np.random.default_rng(0).permutation(z) if shuffle_names else np.arange(z)
    paths = []
    for k in range(z):
        name = f"slice_{int(order[k]):03d}.dcm"
        paths.append(write_mammo_dicom(
            folder / name, volume[k], sop_class=BREAST_TOMOSYNTHESIS, series_uid=series, study_uid=study,
            instance_number=k + 1, image_position=(0.0, 0.0, float(k)), **kwargs))
    return paths
