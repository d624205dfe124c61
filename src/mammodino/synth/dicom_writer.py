"""Phantoms as real DICOM files, shaped like what mammography archives hold.

The package's one DICOM writer: :func:`save_dataset` (file meta + atomic write) and
:func:`code_item` are what the tests' hand-made files (``tests/support/dicom_files.py``)
build on too.

- FFDM: Digital Mammography X-Ray Image Storage - For Presentation
  (1.2.840.10008.5.1.4.1.1.1.2), one frame, MONOCHROME1 or MONOCHROME2, 12 or 14 bits stored
  in 16, with window centre/width (sometimes two pairs, sometimes VOILUTFunction SIGMOID or
  LINEAR), identity rescale, laterality, view code (SNOMED-RT R-10242 CC / R-10226 MLO).
- Film: Secondary Capture (1.2.840.10008.5.1.4.1.1.7), ConversionType DF (digitised film),
  16- or 12-bit MONOCHROME2, RLE Lossless or uncompressed, no window, no ImageLaterality or
  ViewPosition: side and view only inside a CBIS-DDSM-style PatientID, as CBIS-DDSM has it.
- DBT: Breast Tomosynthesis Image Storage (1.2.840.10008.5.1.4.1.1.13.1.3), enhanced
  multi-frame: pixel measures, window and rescale in the shared functional groups, frame
  content and plane position per frame; ``pydicom`` reads ``pixel_array`` as (Z, H, W).

Explicit VR little endian, uncompressed (films: RLE Lossless on request). Nothing depends on the clock or the host: the same
inputs give byte-identical files. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from mammodino.io import uids
from mammodino.io.uids import make_uid  # noqa: F401  (the phantom generator's UIDs)

# SNOMED-RT view codes (ViewCodeSequence); phantoms use CC and MLO
VIEW_CODES = {"CC": ("R-10242", "cranio-caudal"), "MLO": ("R-10226", "medio-lateral oblique"),
              "ML": ("R-10224", "medio-lateral"), "LM": ("R-10228", "latero-medial")}
# PatientOrientation (row direction \ column direction) as mammography units write it
PATIENT_ORIENTATION = {
    ("L", "CC"): ["A", "R"],
    ("R", "CC"): ["P", "L"],
    ("L", "MLO"): ["A", "FR"],
    ("R", "MLO"): ["P", "FL"],
}
MANUFACTURER = "MAMMODINO-SYNTH"


@dataclass(frozen=True)
class Identity:
    """Who and where an image belongs to (all pseudonymous or injected by a privacy test)."""

    patient_name: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    frame_of_reference_uid: str
    study_date: str  # YYYYMMDD
    accession: str
    instance_number: int


@dataclass(frozen=True)
class DisplayStyle:
    """How a (synthetic) vendor encodes a presentation image."""

    name: str
    photometric: str  # MONOCHROME1 | MONOCHROME2
    bits_stored: int  # 12 | 14
    voi_function: str | None  # LINEAR | SIGMOID | None (tag absent: LINEAR by default)
    two_windows: bool  # a second, wider window pair after the first


# Six synthetic vendors; FFDM patients cycle through them so any 3+ patients show variety.
STYLES = [
    DisplayStyle("A", "MONOCHROME2", 12, "LINEAR", False),
    DisplayStyle("B", "MONOCHROME1", 14, "SIGMOID", False),
    DisplayStyle("C", "MONOCHROME2", 14, None, True),
    DisplayStyle("D", "MONOCHROME2", 12, "SIGMOID", False),
    DisplayStyle("E", "MONOCHROME1", 12, "LINEAR", True),
    DisplayStyle("F", "MONOCHROME2", 14, None, False),
]


def _ds(value: float) -> str:
    """A decimal string that always fits DS's 16 characters."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.4e}"


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One item of a code sequence (ViewCodeSequence, AnatomicRegionSequence...)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _identity(ds: Dataset, ident: Identity, sop_class: str) -> None:
    """The patient, study and instance tags every phantom file carries (the PHI the privacy
    tests look for lives here: PatientName, PatientID, AccessionNumber)."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ident.sop_uid
    ds.StudyDate = ident.study_date
    ds.ContentDate = ident.study_date
    ds.StudyTime = "090000"
    ds.AccessionNumber = ident.accession
    ds.Modality = "MG"
    ds.Manufacturer = MANUFACTURER
    ds.ReferringPhysicianName = ""
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = ident.study_uid
    ds.SeriesInstanceUID = ident.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = ident.instance_number


def _common(ds: Dataset, ident: Identity, laterality: str, view: str, sop_class: str) -> None:
    _identity(ds, ident, sop_class)
    ds.SeriesDate = ident.study_date
    ds.SeriesTime = "090000"
    ds.ContentTime = "090000"
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageLaterality = laterality
    ds.Laterality = laterality
    ds.ViewPosition = view
    code, meaning = VIEW_CODES[view]
    ds.ViewCodeSequence = Sequence([code_item(code, "SRT", meaning)])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence()
    ds.AnatomicRegionSequence = Sequence([code_item("T-04000", "SRT", "Breast")])
    ds.BreastImplantPresent = "NO"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"


def save_dataset(ds: Dataset, path: Path, rle: bool = False) -> Path:
    """Write ``ds`` as a DICOM file (Part 10 meta, explicit VR little endian), atomically;
    ``rle``: its native PixelData compressed as RLE Lossless (pydicom's own encoder, so the
    same pixels give the same bytes), as CBIS-DDSM's films are stored."""
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = uids.EXPLICIT_LITTLE_ENDIAN
    ds.file_meta = meta
    if rle:
        ds.compress(uids.RLE_LOSSLESS, encoding_plugin="pydicom", generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ds.save_as(tmp, enforce_file_format=True)
    os.replace(tmp, path)
    return path


def window_of(values: np.ndarray, top: int) -> tuple[float, float]:
    """Window centre/width covering the breast's values (MONOCHROME2 sense)."""
    lo, hi = np.percentile(values, [0.5, 99.8]) if values.size else (0.0, float(top))
    width = max(float(hi - lo) * 1.1, 16.0)
    return float(round((lo + hi) / 2.0)), float(round(width))


def write_ffdm(
    path: Path,
    image: np.ndarray,
    breast: np.ndarray,
    style: DisplayStyle,
    ident: Identity,
    laterality: str,
    view: str,
    pixel_mm: float,
) -> None:
    """``image``: uint16 (H, W) MONOCHROME2 values in [0, 2**bits-1] (tissue bright);
    ``breast``: bool mask used only to pick the window."""
    top = (1 << style.bits_stored) - 1
    centre, width = window_of(image[breast], top)
    pixels = image
    if style.photometric == "MONOCHROME1":
        pixels = (top - image.astype(np.int32)).astype(np.uint16)
        centre = top - centre
    ds = Dataset()
    _common(ds, ident, laterality, view, uids.MAMMO_FOR_PRESENTATION)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SeriesDescription = f"{laterality} {view}"
    ds.ManufacturerModelName = f"Phantom {style.name}"
    ds.PatientOrientation = PATIENT_ORIENTATION[(laterality, view)]
    ds.DetectorType = "DIRECT"
    ds.ImagerPixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
    ds.PixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if style.photometric == "MONOCHROME1" else -1
    ds.PhotometricInterpretation = style.photometric
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    ds.BitsStored = style.bits_stored
    ds.HighBit = style.bits_stored - 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    if style.two_windows:
        ds.WindowCenter = [_ds(centre), _ds(centre)]
        ds.WindowWidth = [_ds(width), _ds(min(width * 1.5, top + 1.0))]
        ds.WindowCenterWidthExplanation = ["NORMAL", "WIDE"]
    else:
        ds.WindowCenter = _ds(centre)
        ds.WindowWidth = _ds(width)
    if style.voi_function:
        ds.VOILUTFunction = style.voi_function
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    save_dataset(ds, path)


def write_dbt(
    path: Path,
    volume: np.ndarray,
    breast: np.ndarray,
    bits_stored: int,
    ident: Identity,
    laterality: str,
    view: str,
    pixel_mm: float,
    slice_mm: float,
) -> None:
    """``volume``: uint16 (Z, H, W) MONOCHROME2, slice 0 nearest the detector."""
    top = (1 << bits_stored) - 1
    n, h, w = volume.shape
    centre, width = window_of(volume[n // 2][breast], top)
    ds = Dataset()
    _common(ds, ident, laterality, view, uids.BREAST_TOMOSYNTHESIS)
    ds.ImageType = ["DERIVED", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    ds.SeriesDescription = f"{laterality} {view} Tomo"
    ds.ManufacturerModelName = "Phantom Tomo"
    ds.ContentQualification = "PRODUCT"
    ds.PatientOrientation = PATIENT_ORIENTATION[(laterality, view)]
    ds.AcquisitionDateTime = ident.study_date + "090000"
    ds.VolumetricProperties = "VOLUME"
    ds.PixelPresentation = "MONOCHROME"
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(h), int(w)
    ds.NumberOfFrames = int(n)
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1

    _dimension_organization(ds, make_uid(ident.sop_uid, "dimension-organization"))
    ds.SharedFunctionalGroupsSequence = Sequence([_shared_groups(pixel_mm, slice_mm, centre, width, laterality)])
    ds.PerFrameFunctionalGroupsSequence = Sequence(_per_frame_groups(n, ident.study_date, slice_mm))
    ds.PixelData = np.ascontiguousarray(volume, dtype="<u2").tobytes()
    save_dataset(ds, path)


def _dimension_organization(ds: Dataset, dim_uid: str) -> None:
    """The 3D dimension organisation of the enhanced multi-frame: frames indexed by
    (StackID, InStackPositionNumber)."""
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionOrganizationType = "3D"
    stack_dim, pos_dim = Dataset(), Dataset()
    for item, pointer in ((stack_dim, 0x00209056), (pos_dim, 0x00209057)):  # StackID, InStackPositionNumber
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
    ds.DimensionIndexSequence = Sequence([stack_dim, pos_dim])


def _shared_groups(pixel_mm: float, slice_mm: float, centre: float, width: float, laterality: str) -> Dataset:
    """The functional groups every frame shares: spacing, orientation, window, rescale, anatomy."""
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
    measures.SliceThickness = _ds(slice_mm)
    measures.SpacingBetweenSlices = _ds(slice_mm)
    shared.PixelMeasuresSequence = Sequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PlaneOrientationSequence = Sequence([orient])
    voi = Dataset()
    voi.WindowCenter = _ds(centre)
    voi.WindowWidth = _ds(width)
    voi.VOILUTFunction = "LINEAR"
    shared.FrameVOILUTSequence = Sequence([voi])
    pvt = Dataset()
    pvt.RescaleIntercept = "0"
    pvt.RescaleSlope = "1"
    pvt.RescaleType = "US"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = Sequence([code_item("T-04000", "SRT", "Breast")])
    anatomy.FrameLaterality = laterality
    shared.FrameAnatomySequence = Sequence([anatomy])
    return shared


def _per_frame_groups(n: int, study_date: str, slice_mm: float) -> list[Dataset]:
    """Per frame: its stack position and its plane position (slice centres, detector first)."""
    per_frame = []
    for j in range(n):
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = j + 1
        content.DimensionIndexValues = [1, j + 1]
        content.FrameAcquisitionDateTime = study_date + "090000"
        item.FrameContentSequence = Sequence([content])
        position = Dataset()
        position.ImagePositionPatient = ["0", "0", _ds((j + 0.5) * slice_mm)]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    return per_frame


def film_patient_id(number: int, laterality: str, view: str, abnormality: str = "Mass", split: str = "Training") -> str:
    """CBIS-DDSM's PatientID: ``Mass-Training_P_00001_LEFT_CC`` (patient, side and view in one)."""
    side = "LEFT" if laterality == "L" else "RIGHT"
    return f"{abnormality}-{split}_P_{number:05d}_{side}_{view}"


FULL_FILM_SERIES = "full mammogram images"  # CBIS-DDSM's three SeriesDescriptions
ROI_MASK_SERIES = "ROI mask images"
CROP_SERIES = "cropped images"


def write_film(path: Path, image: np.ndarray, bits_stored: int, ident: Identity, pixel_mm: float,
               rle: bool, series: str = FULL_FILM_SERIES) -> None:
    """A digitised film as CBIS-DDSM stores it: ``image`` uint16 (H, W) MONOCHROME2 in
    [0, 2**bits_stored - 1]; ``ident.patient_id`` carries side and view
    (:func:`film_patient_id`); no laterality, view or window tags. ``series``: a lesion's
    ``ROI_MASK_SERIES`` or ``CROP_SERIES`` file is the same kind of MG Secondary Capture; only
    its SeriesDescription (and a PatientID ending in the lesion's number) tell it apart."""
    ds = Dataset()
    _identity(ds, ident, uids.SECONDARY_CAPTURE)
    ds.ConversionType = "DF"
    ds.SecondaryCaptureDeviceManufacturer = "Phantom film scanner"
    ds.SeriesDescription = series
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.ascontiguousarray(image, dtype="<u2").tobytes()
    save_dataset(ds, path, rle=rle)
