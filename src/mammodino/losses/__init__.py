"""The MammoDINO objective, one concept per module (DINOv2 semantics where DINOv2 has one).

* :class:`DINOLoss` -- CLS-token self-distillation (``dino_clstoken_loss.py``)
* :class:`iBOTPatchLoss` -- masked-patch self-distillation (``ibot_patch_loss.py``)
* :class:`KoLeoLoss` -- uniformity regulariser on CLS features (``koleo_loss.py``)
* :class:`SliceContrastLoss` -- DBT adjacent-slice InfoNCE (``slice_contrast_loss.py``)
* :func:`sinkhorn_knopp` -- balanced teacher targets (``sinkhorn.py``)
"""

from mammodino.losses.dino_clstoken_loss import DINOLoss
from mammodino.losses.ibot_patch_loss import iBOTPatchLoss
from mammodino.losses.koleo_loss import KoLeoLoss
from mammodino.losses.sinkhorn import sinkhorn_knopp
from mammodino.losses.slice_contrast_loss import SliceContrastLoss

__all__ = ["DINOLoss", "KoLeoLoss", "SliceContrastLoss", "iBOTPatchLoss", "sinkhorn_knopp"]
