"""Breast segmentation (mask, box, tissue fraction) and canonical orientation."""

from mammodino.tissue.orientation import chest_wall_on_left, laterality_from_image, to_canonical
from mammodino.tissue.segmentation import breast_box, breast_mask, segment, tissue_fraction

__all__ = ["breast_box", "breast_mask", "chest_wall_on_left", "laterality_from_image", "segment",
           "tissue_fraction", "to_canonical"]
