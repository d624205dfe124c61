"""Models: the ViT backbone, DINO / slice heads, DINOv2 weight import, encoder export."""

from mammodino.models.heads import DINOHead, SliceProjector
from mammodino.models.vit import ARCHS, VisionTransformer, build_vit

__all__ = ["ARCHS", "DINOHead", "SliceProjector", "VisionTransformer", "build_vit"]
