"""mammodino: self-supervised mammography foundation encoders (MammoDINO).

The public Python entry point for users of a trained encoder is :func:`load_encoder`.
"""

__version__ = "0.1.0"


def load_encoder(path, map_location="cpu"):
    """Load an exported encoder (``mammodino export``) as a ready ``nn.Module``."""
    from mammodino.models.loading import load_encoder as _load

    return _load(path, map_location=map_location)
