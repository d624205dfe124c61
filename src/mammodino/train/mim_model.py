"""The masked-image-modelling baselines, ``method: mae | simmim``, as one model for the engine.

Both reuse MammoDINO's ViT (``ssl_model._backbone``: same architecture, registers, init) and
the whole engine around it: data pipeline, ``TrainStep``, checkpoints, resume, export, probes.
What differs is the objective; there is no teacher and no EMA:

* MAE: the encoder sees only the visible patches of each global crop
  (``ViT.forward_features_visible``), :class:`MAEDecoder` reconstructs every patch, the loss is
  :func:`mae_loss` (MSE on per-patch normalised pixels of the masked patches).
* SimMIM: masked patches are replaced by the ViT's ``mask_token`` and go through the encoder
  (``forward_features(masks=...)``), :class:`SimMIMHead` maps every patch token to its pixels,
  the loss is :func:`simmim_loss` (L1 on the masked pixels).

Each sample's two global crops are two training images (for DBT: two neighbouring slices).
The encoder to export is ``student.backbone`` (``models.export`` takes it when a checkpoint
has no teacher).
"""

from __future__ import annotations

import torch
from torch import nn

from mammodino.losses.mae_loss import mae_loss
from mammodino.losses.simmim_loss import simmim_loss
from mammodino.models.mae_decoder import MAEDecoder
from mammodino.models.simmim_head import SimMIMHead
from mammodino.train.ssl_model import _backbone


class MIMStudent(nn.Module):
    """Backbone + decoder (MAE) or linear head (SimMIM); its forward is what DDP wraps."""

    def __init__(self, cfg):
        super().__init__()
        self.method = str(cfg.method)
        if self.method not in ("mae", "simmim"):
            raise ValueError(f"MIMStudent is for method mae or simmim, got {self.method!r}")
        self.backbone = _backbone(cfg, cfg.model.drop_path_rate)
        vit = self.backbone
        if self.method == "mae":
            m = cfg.mae
            self.decoder = MAEDecoder(vit.embed_dim, vit.patch_size, vit.in_chans, dim=int(m.decoder_dim),
                                      depth=int(m.decoder_depth), num_heads=int(m.decoder_heads),
                                      n_prefix_tokens=1 + vit.num_register_tokens)
        else:
            self.decoder = SimMIMHead(vit.embed_dim, vit.patch_size, vit.in_chans)

    def forward(self, global_crops: torch.Tensor, masks: torch.Tensor, visible_indices: torch.Tensor | None = None):
        """(pixel predictions (2B, N, p*p*C), CLS (2B, D))."""
        p = self.backbone.patch_size
        grid = (global_crops.shape[-2] // p, global_crops.shape[-1] // p)
        if self.method == "mae":
            if visible_indices is None:
                raise ValueError("method mae needs the batch's visible_indices (see data.dataset.collate)")
            out = self.backbone.forward_features_visible(global_crops, visible_indices)
            tokens = torch.cat((out["x_norm_clstoken"].unsqueeze(1), out["x_norm_regtokens"],
                                out["x_norm_patchtokens"]), dim=1)
            return self.decoder(tokens, visible_indices, grid), out["x_norm_clstoken"]
        out = self.backbone.forward_features(global_crops, masks=masks)
        return self.decoder(out["x_norm_patchtokens"]), out["x_norm_clstoken"]


class MIMModel(nn.Module):
    """MAE or SimMIM with the interface ``TrainStep`` and the trainer use (no teacher: the EMA
    and teacher-sync calls do nothing, and no collapse monitor is built)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.method = str(cfg.method)
        self.student = MIMStudent(cfg)

    def sync_teacher_from_student(self) -> None:
        """Nothing to sync: these methods have no teacher."""

    def update_teacher(self, momentum: float) -> None:
        """No EMA network: nothing to update."""

    def forward_losses(self, batch: dict, teacher_temp: float | None = None, student: nn.Module | None = None) -> dict:
        """The reconstruction loss of one (micro-)batch; ``student`` may be the DDP-wrapped one.
        ``teacher_temp`` is accepted for the engine's uniform call and unused."""
        student = student or self.student
        imgs = batch["global_crops"]
        masks = batch["masks"]
        pred, cls = student(imgs, masks, batch.get("visible_indices"))
        vit = self.student.backbone
        if self.method == "mae":
            loss = mae_loss(pred, imgs, masks, vit.patch_size, norm_pix=bool(self.cfg.mae.norm_pix_loss))
        else:
            loss = simmim_loss(pred, imgs, masks, vit.patch_size, vit.in_chans)
        return {"loss": loss, f"{self.method}_loss": loss.detach(), "_cls": cls.detach()}
