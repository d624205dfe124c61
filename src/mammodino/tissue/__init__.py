"""Breast segmentation (mask, box, tissue fraction, pectoral muscle), orientation and QC."""

from mammodino.tissue.orientation import chest_wall_on_left, laterality_from_mask
from mammodino.tissue.segmentation import breast_box, breast_mask, segment, tissue_fraction

__all__ = ["breast_box", "breast_mask", "chest_wall_on_left", "laterality_from_mask", "segment",
           "tissue_fraction"]
