"""Readers: DICOM (FFDM, enhanced multi-frame DBT, per-slice DBT series), PNG/TIFF/JPEG/NPY.

Every reader returns a :class:`~mammodino.io.types.MammoImage` (pixels in [0, 1], tissue
bright) or raises :class:`~mammodino.errors.SkipFile` with a one-line reason.
"""

from mammodino.io.dicom_reader import read_dicom, read_dicom_series
from mammodino.io.image_reader import read_image
from mammodino.io.types import MammoImage

__all__ = ["MammoImage", "read_dicom", "read_dicom_series", "read_image"]
