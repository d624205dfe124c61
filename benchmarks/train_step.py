"""Training-step throughput: one full MammoDINO/DINOv2 step, images per second.

The step is the real one: teacher forward on the 2 global crops (no autograd), student
forward on the globals with iBOT masks and on the local crops, one DINO-head pass over
[global CLS, local CLS, masked patches], Sinkhorn-Knopp targets, DINO (multi-crop) + iBOT +
KoLeo losses, backward, gradient clipping (3.0), AdamW step, EMA teacher update. Inputs are
random tensors of the training shapes (the loader is measured by benchmarks/loader.py).

Side by side in the same run (these machines are noisy; compare ratios, not absolutes):

* ``trainer``          -- the product: ``SSLModel.forward_losses`` and the trainer's AdamW
  parameter groups (layer-wise decay), clipping and EMA, exactly as ``mammodino pretrain``
  runs them (slice loss off: the yardstick step has no DBT).
* ``mammodino``        -- the same components assembled by hand (the lower bound of overhead).
* ``mkl-linear``       -- ours with PyTorch's default fp32 GEMMs (MKL) instead of oneDNN.
* ``dinov2-style``     -- the same step done the way DINOv2's code does it on a machine
  without xFormers: explicit softmax attention, per-parameter (non-foreach) AdamW and
  clipping, teacher under ``no_grad``. The design yardstick (DINOv2's own components on a
  2-core machine here) is ~0.75 images/s for the default shapes.

Default shapes: ViT-S/14, 4 registers, batch 8, 2 x 224 + 8 x 98 crops, 4096 prototypes.

    python benchmarks/train_step.py                    # CPU, both variants
    python benchmarks/train_step.py --steps 3 --warmup 1 --variants mammodino
    python benchmarks/train_step.py --device cuda --arch base --batch 64 --precision bf16
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mammodino.losses import DINOLoss, KoLeoLoss, iBOTPatchLoss  # noqa: E402
from mammodino.models import layers as vit_layers  # noqa: E402
from mammodino.models.heads import DINOHead  # noqa: E402
from mammodino.models.vit import build_vit  # noqa: E402

YARDSTICK_CPU = 0.75  # images/s, DINOv2's own components, 2 cores (DESIGN.md)


def explicit_attention(self, x):
    """DINOv2's ``Attention.forward`` without xFormers (materialises the T x T matrix)."""
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Setup:
    """The step assembled by hand from our components (or DINOv2's way, for ``dinov2-style``)."""

    def __init__(self, args, variant: str):
        self.args, self.variant = args, variant
        dev = torch.device(args.device)
        torch.manual_seed(0)
        self.student = torch.nn.ModuleDict({
            "backbone": build_vit(args.arch, patch_size=args.patch, num_register_tokens=args.registers,
                                  drop_path_rate=args.drop_path, img_size=args.global_size),
            "dino_head": DINOHead(build_vit_dim(args.arch), args.prototypes),
        }).to(dev)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.dino = DINOLoss(args.prototypes).to(dev)
        self.ibot = iBOTPatchLoss(args.prototypes).to(dev)
        self.koleo = KoLeoLoss()
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.params = params
        self.t_params = list(self.teacher.parameters())
        if variant == "dinov2-style":
            self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04, foreach=False)
        else:
            fused = args.device == "cpu" or args.device.startswith("cuda")
            self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04, fused=fused)
        self.batch = self.make_batch(dev)
        self.autocast = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
                         if args.precision == "bf16" else torch.autocast(device_type=dev.type, enabled=False))
        self.student_fwd = self.student_forward
        if args.compile and variant == "mammodino":
            self.student_fwd = torch.compile(self.student_forward)

    def make_batch(self, dev):
        a = self.args
        g = torch.Generator().manual_seed(0)
        b = a.batch
        n = (a.global_size // a.patch) ** 2
        masks = torch.zeros(2 * b, n, dtype=torch.bool)
        for i in range(b):  # half of the global crops masked, ratio U(0.1, 0.5) (DINOv2)
            ratio = 0.1 + 0.4 * torch.rand(1, generator=g).item()
            masks[i, torch.randperm(n, generator=g)[: int(ratio * n)]] = True
        masks = masks[torch.randperm(2 * b, generator=g)]
        return {
            "global": torch.randn(2 * b, 1, a.global_size, a.global_size, generator=g).to(dev),
            "local": torch.randn(a.n_local * b, 1, a.local_size, a.local_size, generator=g).to(dev),
            "masks": masks.to(dev),
            "mask_indices": masks.flatten().nonzero().flatten().to(dev),
        }

    def teacher_forward(self, batch):
        b = self.args.batch
        out = self.teacher["backbone"].forward_features(batch["global"])
        cls = out["x_norm_clstoken"]
        patches = out["x_norm_patchtokens"].flatten(0, 1).index_select(0, batch["mask_indices"])
        logits = self.teacher["dino_head"](torch.cat([cls, patches]))
        n_cls = 2 * b
        dino_t = self.dino.sinkhorn_knopp_teacher(logits[:n_cls], 0.07)
        ibot_t = self.ibot.sinkhorn_knopp_teacher(logits[n_cls:], 0.07, patches.shape[0])
        return dino_t, ibot_t

    def student_forward(self, batch):
        g = self.student["backbone"].forward_features(batch["global"], masks=batch["masks"])
        l = self.student["backbone"].forward_features(batch["local"])
        cls_g, cls_l = g["x_norm_clstoken"], l["x_norm_clstoken"]
        patches = g["x_norm_patchtokens"].flatten(0, 1).index_select(0, batch["mask_indices"])
        logits = self.student["dino_head"](torch.cat([cls_g, cls_l, patches]))
        return cls_g, logits

    def step(self):
        a, batch = self.args, self.batch
        b = a.batch
        with self.autocast:
            if self.variant == "dinov2-style":
                with torch.no_grad():
                    dino_t, ibot_t = self.teacher_forward(batch)
            else:
                with torch.inference_mode():
                    dino_t, ibot_t = self.teacher_forward(batch)
                dino_t, ibot_t = dino_t.clone(), ibot_t.clone()  # usable as autograd constants
            cls_g, logits = self.student_fwd(batch)
        n_g, n_l = 2 * b, a.n_local * b
        dino = self.dino.forward_multicrop(logits[:n_g], logits[n_g : n_g + n_l], dino_t)
        ibot = self.ibot.forward_masked(logits[n_g + n_l :], ibot_t, batch["masks"])
        koleo = sum(self.koleo(c) for c in cls_g.chunk(2))
        loss = dino + ibot + 0.1 * koleo
        loss.backward()
        if self.variant == "dinov2-style":
            for m in self.student.values():  # DINOv2 clips each submodule separately
                torch.nn.utils.clip_grad_norm_(m.parameters(), 3.0, foreach=False)
        else:
            torch.nn.utils.clip_grad_norm_(self.params, 3.0, foreach=True)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_mul_(self.t_params, 0.996)
            torch._foreach_add_(self.t_params, [p.detach() for p in self.params], alpha=0.004)
        return float(loss.detach())


class TrainerSetup:
    """The trainer's own step (``mammodino.train``), on random inputs of the training shapes."""

    def __init__(self, args):
        from mammodino.config import load_config
        from mammodino.train.optim import apply_schedules, build_optimizer, param_groups
        from mammodino.train.schedules import build_schedules
        from mammodino.train.ssl_model import SSLModel

        a = self.args = args
        self.dev = torch.device(a.device)
        self.cfg = load_config("vit-small", [
            f"model.arch={a.arch}", f"model.patch_size={a.patch}", f"model.num_register_tokens={a.registers}",
            f"model.drop_path_rate={a.drop_path}", f"dino.n_prototypes={a.prototypes}", f"ibot.n_prototypes={a.prototypes}",
            f"crops.global_crop_size={a.global_size}", f"crops.local_crop_size={a.local_size}",
            f"crops.local_crops_number={a.n_local}", f"train.batch_size={a.batch}", "slice.enabled=false",
            "train.steps=1000"])
        torch.manual_seed(0)
        self.model = SSLModel(self.cfg).to(self.dev)
        student = self.model.student
        modules = {n: m for n, m in student.named_children() if m is not None}
        self.opt = build_optimizer(param_groups(modules, len(student.backbone.blocks), 0.9, 0.2), (0.9, 0.999))
        self.values = build_schedules(self.cfg).at(200)
        apply_schedules(self.opt, self.values)
        self.params = [p for p in student.parameters() if p.requires_grad]
        base = Setup.make_batch(self, self.dev)
        self.batch = {
            "global_crops": base["global"], "local_crops": base["local"], "masks": base["masks"],
            "mask_indices_list": base["mask_indices"],
            "masks_weight": (1 / base["masks"].sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(base["masks"])[base["masks"]],
            "n_masked_patches": torch.tensor([base["mask_indices"].numel()]),
            "is_dbt": torch.zeros(a.batch, dtype=torch.bool, device=self.dev),
        }
        self.autocast = (torch.autocast(device_type=self.dev.type, dtype=torch.bfloat16)
                         if a.precision == "bf16" else torch.autocast(device_type=self.dev.type, enabled=False))

    def step(self):
        with self.autocast:
            losses = self.model.forward_losses(self.batch, self.values["teacher_temp"])
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.params, 3.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.model.update_teacher(self.values["mom"])
        return float(losses["loss"].detach())


def build_vit_dim(arch: str) -> int:
    from mammodino.models.vit import ARCHS

    return ARCHS[arch][0]


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args, variant: str) -> dict:
    original = vit_layers.Attention.forward, vit_layers.ONEDNN_LINEAR
    if variant == "dinov2-style":
        vit_layers.Attention.forward = explicit_attention
    if variant not in ("mammodino", "trainer"):  # mkl-linear and dinov2-style use PyTorch's default GEMMs
        vit_layers.ONEDNN_LINEAR = False
    try:
        setup = TrainerSetup(args) if variant == "trainer" else Setup(args, variant)
        losses, times, cpu = [], [], []
        for i in range(args.warmup + args.steps):
            sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            losses.append(setup.step())
            sync(args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    finally:
        vit_layers.Attention.forward, vit_layers.ONEDNN_LINEAR = original
    s = statistics.median(times)
    return {"variant": variant, "s_per_step": s, "images_per_s": args.batch / s,
            "cpu_s_per_step": statistics.median(cpu), "spread": (min(times), max(times)), "loss": losses[-1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="small")
    p.add_argument("--patch", type=int, default=14)
    p.add_argument("--registers", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--global-size", type=int, default=224)
    p.add_argument("--local-size", type=int, default=98)
    p.add_argument("--n-local", type=int, default=8)
    p.add_argument("--prototypes", type=int, default=4096)
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the student forward (mammodino variant)")
    p.add_argument("--variants", default="trainer,dinov2-style",
                   help="comma-separated: trainer, mammodino, mkl-linear (ours without the oneDNN linear), dinov2-style")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"train step: ViT-{args.arch}/{args.patch}, {args.registers} registers, batch {args.batch}, "
          f"2x{args.global_size} + {args.n_local}x{args.local_size} crops, {args.prototypes} prototypes, "
          f"{args.precision}, {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
          f"median of {args.steps} steps after {args.warmup} warm-up", flush=True)
    results = []
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        r = measure(args, variant)
        results.append(r)
        print(f"  {variant:14s} {r['images_per_s']:7.2f} images/s  {r['s_per_step']:7.2f} s/step "
              f"(min {r['spread'][0]:.2f}, max {r['spread'][1]:.2f})  {r['cpu_s_per_step']:7.2f} CPU-s/step  "
              f"loss {r['loss']:.3f}", flush=True)
    if args.device == "cpu" and (args.arch, args.batch, args.global_size, args.n_local) == ("small", 8, 224, 8):
        print(f"  {'yardstick':14s} {YARDSTICK_CPU:7.2f} images/s  (DINOv2's components, 2 cores, from DESIGN.md)")
    by = {r["variant"]: r for r in results}
    ours = by.get("trainer") or by.get("mammodino")
    if ours and "dinov2-style" in by:
        a, b = ours, by["dinov2-style"]
        print(f"  {a['variant']} / dinov2-style: {a['images_per_s'] / b['images_per_s']:.2f}x in wall time, "
              f"{b['cpu_s_per_step'] / a['cpu_s_per_step']:.2f}x in CPU time (CPU time is robust to other "
              "processes sharing the cores; wall time is not)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
