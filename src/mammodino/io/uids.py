"""Every DICOM UID the package names, in one place, and the one way it makes new ones.

The reader decides by SOP class (tomosynthesis volume, DBT projections, FOR PROCESSING raw
data), the walker groups per-slice DBT by it, and the phantom writer stamps it; a class
spelled twice is a class that can be spelled wrong once.
"""

from __future__ import annotations

from pydicom.uid import generate_uid

# SOP classes (DICOM PS3.4, Annex B)
MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray - For Presentation
MAMMO_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"  # Digital Mammography X-Ray - For Processing
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"  # Breast Tomosynthesis Image Storage
BREAST_PROJECTION_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"  # DBT source projections
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"  # a dose report, no pixels
FOR_PROCESSING_SOPS = frozenset({
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    MAMMO_FOR_PROCESSING,
    "1.2.840.10008.5.1.4.1.1.1.3.1",  # Digital Intra-Oral X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray Image Storage - For Processing
})

# Transfer syntaxes (PS3.5, Annex A)
IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
ENCAPSULATED_PREFIXES = ("1.2.840.10008.1.2.4.", RLE_LOSSLESS)


def make_uid(*parts: object) -> str:
    """A UID derived from ``parts`` (the same parts give the same UID); no parts: a random one."""
    if not parts:
        return str(generate_uid())
    return str(generate_uid(entropy_srcs=["mammodino-synth", *map(str, parts)]))
