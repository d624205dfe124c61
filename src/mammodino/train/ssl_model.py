"""Student and teacher networks and the MammoDINO objective for one batch.

Student: backbone + DINO head (+ optional iBOT head) + slice projector and predictor.
Teacher: the same without the predictor, updated only as an EMA of the student.
Loss = DINO (CLS, multi-crop) + iBOT (masked patches) + KoLeo + DBT slice InfoNCE, with the
term normalisation of DINOv2 (see ``forward_losses``).
"""

from __future__ import annotations

import torch
from torch import nn

from mammodino.losses import DINOLoss, iBOTPatchLoss, KoLeoLoss, SliceContrastLoss
from mammodino.models.heads import DINOHead, SliceProjector
from mammodino.models.vit import build_vit


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of an FSDP2 (DTensor) parameter; the tensor itself otherwise."""
    return t.to_local() if hasattr(t, "to_local") else t


def _backbone(cfg, drop_path: float):
    m = cfg.model
    return build_vit(m.arch, patch_size=m.patch_size, num_register_tokens=m.num_register_tokens,
                     drop_path_rate=drop_path, layerscale_init=m.layerscale_init,
                     img_size=cfg.crops.global_crop_size)


def _dino_head(cfg, in_dim, n_prototypes):
    d = cfg.dino
    return DINOHead(in_dim, n_prototypes, hidden_dim=d.hidden_dim, bottleneck_dim=d.bottleneck_dim, nlayers=d.nlayers)


def _backbone_passes(module, calls: list[tuple]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(cls, patches)`` of ``module.backbone.forward_cls_and_patches`` for each call, as two
    half-batches on two threads when the step set ``module.halves`` (train.half_batches)."""
    halves = module.halves
    if halves is not None and all(c[0].shape[0] >= 2 for c in calls):
        return halves.cls_and_patches(module.backbone, calls)
    return [module.backbone.forward_cls_and_patches(*c) for c in calls]


class Student(nn.Module):
    """Everything that receives gradients; its forward is what DDP wraps."""

    halves = None  # a train.half_batches.HalfBatches when the step splits its backbone passes

    def __init__(self, cfg):
        super().__init__()
        self.backbone = _backbone(cfg, cfg.model.drop_path_rate)
        dim = self.backbone.embed_dim
        self.dino_head = _dino_head(cfg, dim, cfg.dino.n_prototypes)
        self.ibot_head = _dino_head(cfg, dim, cfg.ibot.n_prototypes) if cfg.ibot.separate_head else None
        self.slice_proj = SliceProjector(dim, cfg.slice.hidden_dim, cfg.slice.proj_dim, predictor=True) if cfg.slice.enabled else None

    def forward(self, global_crops, local_crops, masks, mask_indices):
        has_local = local_crops is not None and local_crops.numel() > 0
        calls = [(global_crops, masks, mask_indices)] + ([(local_crops, None, None)] if has_local else [])
        passes = _backbone_passes(self, calls)
        cls, patches = passes[0]
        local_cls = passes[1][0] if has_local else cls[:0]
        if self.ibot_head is None:  # one head pass over everything, as DINOv2 does
            logits = self.dino_head(torch.cat((cls, local_cls, patches)))
            g_logits, l_logits, p_logits = logits.split([cls.shape[0], local_cls.shape[0], patches.shape[0]])
        else:
            g_logits, l_logits = self.dino_head(torch.cat((cls, local_cls))).split([cls.shape[0], local_cls.shape[0]])
            p_logits = self.ibot_head(patches)
        out = {"global_cls": cls, "global_logits": g_logits, "ibot_logits": p_logits}
        if has_local:
            out["local_logits"] = l_logits
        if self.slice_proj is not None:
            out["slice_z"] = self.slice_proj(cls)
        return out


class Teacher(nn.Module):
    """The EMA network; its forward gives the raw targets (a forward, so FSDP can shard it)."""

    halves = None  # as Student.halves

    def __init__(self, cfg):
        super().__init__()
        self.backbone = _backbone(cfg, 0.0)
        dim = self.backbone.embed_dim
        self.dino_head = _dino_head(cfg, dim, cfg.dino.n_prototypes)
        self.ibot_head = _dino_head(cfg, dim, cfg.ibot.n_prototypes) if cfg.ibot.separate_head else None
        self.slice_proj = SliceProjector(dim, cfg.slice.hidden_dim, cfg.slice.proj_dim, predictor=False) if cfg.slice.enabled else None

    def forward(self, global_crops, mask_indices):
        """Targets in crop order (crop 1 of every sample, then crop 2): the losses pair them."""
        cls, patches = _backbone_passes(self, [(global_crops, None, mask_indices)])[0]
        if self.ibot_head is None:
            dino_logits, ibot_logits = self.dino_head(torch.cat((cls, patches))).split([cls.shape[0], patches.shape[0]])
        else:
            dino_logits, ibot_logits = self.dino_head(cls), self.ibot_head(patches)
        out = {"cls": cls, "dino_logits": dino_logits, "ibot_logits": ibot_logits}
        if self.slice_proj is not None:
            out["slice_z"] = self.slice_proj(cls)
        return out


class SSLModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.student = Student(cfg)
        self.teacher = Teacher(cfg)
        self.teacher.requires_grad_(False)
        self.dino_loss = DINOLoss(cfg.dino.n_prototypes, student_temp=cfg.dino.student_temp,
                                  center_momentum=cfg.dino.center_momentum)
        self.ibot_loss = iBOTPatchLoss(cfg.ibot.n_prototypes if cfg.ibot.separate_head else cfg.dino.n_prototypes,
                                       student_temp=cfg.dino.student_temp, center_momentum=cfg.dino.center_momentum)
        self.koleo_loss = KoLeoLoss()
        self.slice_loss = SliceContrastLoss(cfg.slice.temperature) if cfg.slice.enabled else None
        self.sync_teacher_from_student()

    def ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(teacher, student) parameters matched by name; the student predictor has no twin."""
        s = dict(self.student.named_parameters())
        t_params, s_params = [], []
        for name, p in self.teacher.named_parameters():
            t_params.append(p)
            s_params.append(s[name])
        return t_params, s_params

    @torch.no_grad()
    def sync_teacher_from_student(self) -> None:
        for t, s in zip(*self.ema_pairs()):
            t.copy_(s)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        # Under FSDP both networks are sharded alike, so the EMA runs on the local shards.
        t_params, s_params = self.ema_pairs()
        t_local = [_local(p) for p in t_params]
        torch._foreach_mul_(t_local, momentum)
        torch._foreach_add_(t_local, [_local(p.detach()) for p in s_params], alpha=1.0 - momentum)

    @torch.no_grad()
    def teacher_targets(self, batch: dict, teacher_temp: float) -> dict:
        cfg = self.cfg
        t = self.teacher(batch["global_crops"], batch["mask_indices_list"])
        dino_logits, ibot_logits = t["dino_logits"], t["ibot_logits"]
        n_masked = batch["n_masked_patches"].to(dino_logits.device)
        if cfg.dino.centering == "sinkhorn_knopp":
            dino_probs = self.dino_loss.sinkhorn_knopp_teacher(dino_logits, teacher_temp)
            ibot_probs = self.ibot_loss.sinkhorn_knopp_teacher(ibot_logits, teacher_temp, n_masked_patches_tensor=n_masked)
        else:
            dino_probs = self.dino_loss.softmax_center_teacher(dino_logits, teacher_temp)
            self.dino_loss.update_center(dino_logits)
            ibot_probs = self.ibot_loss.softmax_center_teacher(ibot_logits, teacher_temp)
            self.ibot_loss.update_center(ibot_logits)
        out = {"dino_probs": dino_probs, "ibot_probs": ibot_probs, "cls": t["cls"]}
        if "slice_z" in t:
            out["slice_z"] = t["slice_z"]
        return out

    def forward_losses(self, batch: dict, teacher_temp: float, student: nn.Module | None = None) -> dict:
        """All loss terms for one (micro-)batch. ``student`` may be the DDP-wrapped student.

        Each term is the tested form of its loss module, fed in collate (crop) order:
        DINO by :meth:`DINOLoss.multicrop_terms` (DINOv2's pair normalisation), iBOT by
        :meth:`iBOTPatchLoss.forward_masked`, the slice InfoNCE by the symmetric (2B-row)
        form of :class:`SliceContrastLoss`, KoLeo on each global crop's CLS tokens.
        """
        cfg = self.cfg
        student = student if student is not None else self.student  # a compiled module has no truth value
        n_global = 2
        teacher = self.teacher_targets(batch, teacher_temp)
        s = student(batch["global_crops"], batch.get("local_crops"), batch["masks"], batch["mask_indices_list"])

        global_sum, local_sum, n_terms = self.dino_loss.multicrop_terms(
            s["global_logits"], s.get("local_logits"), teacher["dino_probs"], n_global)
        dino_global, dino_local = global_sum / n_terms, local_sum / n_terms
        koleo = sum(self.koleo_loss(p) for p in s["global_cls"].chunk(n_global))
        n_masked = int(batch["n_masked_patches"].reshape(-1)[0])
        if n_masked > 0:
            ibot = self.ibot_loss.forward_masked(
                s["ibot_logits"], teacher["ibot_probs"], student_masks_flat=batch["masks"],
                n_masked_patches=n_masked, masks_weight=batch["masks_weight"])
        else:
            ibot = s["ibot_logits"].sum() * 0.0
        losses = {
            "dino_loss": dino_global + dino_local,
            "dino_local_loss": dino_local,
            "dino_global_loss": dino_global,
            "ibot_loss": ibot,
            "koleo_loss": koleo,
        }
        total = cfg.dino.loss_weight * losses["dino_loss"] + cfg.ibot.loss_weight * ibot + cfg.dino.koleo_loss_weight * koleo
        if self.slice_loss is not None:
            # symmetric form: student slice z against teacher slice z' and the reverse
            slice_loss = self.slice_loss(s["slice_z"], teacher["slice_z"], batch["is_dbt"])
            losses["slice_loss"] = slice_loss
            total = total + cfg.slice.loss_weight * slice_loss
        losses["loss"] = total
        losses["_teacher_probs"] = teacher["dino_probs"]
        losses["_teacher_cls"] = teacher["cls"]
        return losses
