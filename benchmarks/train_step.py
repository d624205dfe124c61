"""Training-step throughput: our trainer's own step against DINOv2's own code, in one run.

Variants, timed interleaved (round-robin, ``--rounds`` times, median reported), on the same
synthetic batch of the training shapes (the loader is measured by ``benchmarks/pretrain.py``
and ``benchmarks/loader.py``):

* ``trainer [bf16|fp32]`` -- the production step, ``train.step.TrainStep`` built by
  ``build_train_step`` (the object ``mammodino pretrain`` calls: finite vote, freeze, clip,
  fused AdamW groups, EMA) with ``train.precision=auto``: what a user gets. Its precision
  (bf16 autocast where this CPU's bf16 GEMMs measured >= 2x fp32, e.g. AMX; else fp32) and
  its fp32 GEMM path (oneDNN or MKL) are the cached choices of ``models.gemm``.
* ``trainer-fp32`` / ``trainer-bf16`` -- the same step forced to one precision (left out
  when the default already runs it). fp32 master weights, optimizer and losses either way.
* ``dinov2`` -- DINOv2's own components from a local checkout (``--dinov2-src DIR``; never a
  dependency of the package): its ``DinoVisionTransformer`` (``MemEffAttention``, which
  without xFormers runs PyTorch SDPA), ``DINOHead``, ``DINOLoss``, ``iBOTPatchLoss``,
  ``KoLeoLoss``, its fused AdamW parameter groups, per-submodule clipping and foreach EMA,
  assembled as ``SSLMetaArch.forward_backward`` + ``train.py`` do. Without xFormers its
  ``BlockDiagonalMask`` head pass becomes a ``cat`` + ``split`` and the student runs the
  global and local crops as two backbone calls (its nested-tensor path needs xFormers);
  its iBOT Sinkhorn calls ``all_reduce`` unguarded, so it gets a one-process stand-in.

Also printed: the CPU (model, ``torch.backends.cpu.get_cpu_capability()``), FLOPs per step
(``torch.utils.flop_counter`` over forward + backward, aten GEMM path so every matmul is
seen; the same count for a bf16 step), and the fraction of peak, where peak = the GFLOP/s of
a 2048^3 fp32 matmul measured in the same rounds (best of the two GEMM paths), so machine
load affects both alike; for bf16 steps also the fraction of a 2048^3 bf16 matmul's rate.

``--isa native,avx2`` repeats the whole measurement in child processes, the second with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``: the AVX2
class *emulated* on an AVX-512 CPU (same caches and clocks, AVX2 kernels).

    python benchmarks/train_step.py --dinov2-src /tmp/dinov2-src             # ViT-S/14 yardstick shapes
    python benchmarks/train_step.py --dinov2-src /tmp/dinov2-src --isa native,avx2
    python benchmarks/train_step.py --preset cpu-tiny --dinov2-src /tmp/dinov2-src  # the demo's step
    python benchmarks/train_step.py --device cuda --arch base --batch 64 --precision bf16 --variants trainer
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
import warnings
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mammodino import allocator, machine  # noqa: E402
from mammodino.config import load_config  # noqa: E402
from mammodino.models import gemm  # noqa: E402
from mammodino.models.vit import ARCHS  # noqa: E402
from mammodino.train.ssl_model import SSLModel  # noqa: E402
from mammodino.train.step import build_train_step, use_half_batches  # noqa: E402

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
TIMED_STEP = 200  # a step past the last-layer freeze and the lr warm-up: the common case


def build_cfg(args):
    if args.preset == "cpu-tiny":
        over = [f"train.precision={args.precision}", f"train.keep_freed_memory={_keep(args)}", *_split(args)]
        if args.batch:
            over.append(f"train.batch_size={args.batch}")
        return load_config("cpu-tiny", over)
    return load_config("vit-small", [
        f"model.arch={args.arch}", f"model.patch_size={args.patch}", f"model.num_register_tokens={args.registers}",
        "model.drop_path_rate=0.1", "model.layerscale_init=1e-5",
        f"dino.n_prototypes={args.prototypes}", f"ibot.n_prototypes={args.prototypes}",
        "dino.hidden_dim=2048", "dino.bottleneck_dim=256", "dino.centering=sinkhorn_knopp",
        f"crops.global_crop_size={args.global_size}", f"crops.local_crop_size={args.local_size}",
        f"crops.local_crops_number={args.n_local}", f"train.batch_size={args.batch or 8}", "slice.enabled=false",
        "train.steps=1000", f"train.precision={args.precision}", f"train.keep_freed_memory={_keep(args)}",
        *_split(args)])


def _split(args) -> list[str]:
    """train.half_batches of a variant: the shipped default unless the variant names one."""
    value = getattr(args, "half_batches", None)
    return [] if value is None else [f"train.half_batches={value}"]


def _keep(args) -> bool:
    """train.keep_freed_memory of this child: glibc keeps freed activations (the default)."""
    return getattr(args, "malloc", "keep") != "default"


def make_batch(cfg, device) -> dict:
    """A collated batch of the training shapes; masks as DINOv2's collate draws them."""
    g = torch.Generator().manual_seed(0)
    b, c = int(cfg.train.batch_size), cfg.crops
    n = (c.global_crop_size // cfg.model.patch_size) ** 2
    n_masked_samples = int(2 * b * 0.5)
    probs = torch.linspace(0.1, 0.5, n_masked_samples + 1)
    masks = torch.zeros(2 * b, n, dtype=torch.bool)
    upperbound = 0
    for i in range(n_masked_samples):
        k = int(n * float(probs[i] + (probs[i + 1] - probs[i]) * torch.rand(1, generator=g)))
        masks[i, torch.randperm(n, generator=g)[:k]] = True
        upperbound += int(n * float(probs[i + 1]))
    masks = masks[torch.randperm(2 * b, generator=g)]
    idx = masks.flatten().nonzero().flatten()
    is_dbt = torch.zeros(b, dtype=torch.bool)
    is_dbt[: b // 4] = bool(cfg.slice.enabled)
    batch = {
        "global_crops": torch.randn(2 * b, 1, c.global_crop_size, c.global_crop_size, generator=g),
        "local_crops": torch.randn(c.local_crops_number * b, 1, c.local_crop_size, c.local_crop_size, generator=g),
        "masks": masks, "mask_indices_list": idx,
        "masks_weight": (1 / masks.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(masks)[masks],
        "n_masked_patches": torch.tensor([idx.numel()]), "upperbound": upperbound, "is_dbt": is_dbt,
    }
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


class TrainerVariant:
    """The production step; ``path`` forces the GEMM path of its linears for the call."""

    def __init__(self, cfg, batch, device):
        torch.manual_seed(0)
        self.step = build_train_step(cfg, SSLModel(cfg).to(device), device)
        self.batch = batch

    def __call__(self, path: str | None):
        gemm.set_path(path)
        try:
            r = self.step(TIMED_STEP, [self.batch])
        finally:
            gemm.set_path(None)
        return r.losses["loss"]


class DINOv2Variant:
    """DINOv2's own modules, assembled as its SSLMetaArch.forward_backward and train loop."""

    def __init__(self, cfg, batch, device, src: str):
        src = str(Path(src).resolve())
        if not (Path(src) / "dinov2" / "models" / "vision_transformer.py").exists():
            raise SystemExit(f"--dinov2-src {src}: no dinov2/models/vision_transformer.py there "
                             "(a checkout of facebookresearch/dinov2)")
        os.environ.setdefault("XFORMERS_DISABLED", "1")  # not installed here; say so once, quietly
        sys.path.insert(0, src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from dinov2.layers import DINOHead, MemEffAttention
            from dinov2.layers import NestedTensorBlock as Block
            from dinov2.loss import DINOLoss, KoLeoLoss, iBOTPatchLoss
            from dinov2.loss import ibot_patch_loss
            from dinov2.models.vision_transformer import DinoVisionTransformer
            from dinov2.utils.param_groups import fuse_params_groups, get_params_groups_with_decay
        ibot_patch_loss.dist = types.SimpleNamespace(  # one process: all_reduce is the identity
            all_reduce=lambda *a, **k: None, is_initialized=lambda: False, get_world_size=lambda: 1)
        self.cfg, self.batch, self.device = cfg, batch, device
        m, d = cfg.model, cfg.dino
        dim, depth, heads = ARCHS[m.arch]

        def vit(dpr):
            return DinoVisionTransformer(
                img_size=cfg.crops.global_crop_size, patch_size=m.patch_size, in_chans=1, embed_dim=dim, depth=depth,
                num_heads=heads, mlp_ratio=4, init_values=m.layerscale_init, num_register_tokens=m.num_register_tokens,
                block_fn=partial(Block, attn_class=MemEffAttention), drop_path_rate=dpr, ffn_layer="mlp",
                block_chunks=0)

        def head():
            return DINOHead(in_dim=dim, out_dim=d.n_prototypes, hidden_dim=d.hidden_dim,
                            bottleneck_dim=d.bottleneck_dim, nlayers=d.nlayers)

        torch.manual_seed(0)
        self.student = torch.nn.ModuleDict({"backbone": vit(m.drop_path_rate), "dino_head": head()}).to(device)
        self.teacher = torch.nn.ModuleDict({"backbone": vit(0.0), "dino_head": head()}).to(device)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.dino_loss = DINOLoss(d.n_prototypes).to(device)
        self.ibot_loss = iBOTPatchLoss(d.n_prototypes).to(device)
        self.koleo_loss = KoLeoLoss()
        groups = []
        for mod in self.student.values():
            fused = list(fuse_params_groups(get_params_groups_with_decay(mod, cfg.optim.layerwise_decay,
                                                                         cfg.optim.patch_embed_lr_mult)))
            for grp in fused:
                grp["foreach"] = True
            groups += fused
        self.optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.optim.betas))
        for grp in self.optimizer.param_groups:  # its apply_optim_scheduler
            grp["lr"] = 1e-4 * grp["lr_multiplier"]
            grp["weight_decay"] = 0.04 * grp["wd_multiplier"]
        self.sinkhorn = cfg.dino.centering == "sinkhorn_knopp"

    def __call__(self, path=None):
        cfg, b = self.cfg, self.batch
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_backward(b, 0.07)
        for v in self.student.values():
            torch.nn.utils.clip_grad_norm_(v.parameters(), cfg.optim.clip_grad)
        self.optimizer.step()
        m = 0.996
        with torch.no_grad():
            s_params = [p for k in self.student for p in self.student[k].parameters()]
            t_params = [p for k in self.teacher for p in self.teacher[k].parameters()]
            torch._foreach_mul_(t_params, m)
            torch._foreach_add_(t_params, s_params, alpha=1 - m)
        return float(loss)

    def forward_backward(self, b, teacher_temp):
        n_local = self.cfg.crops.local_crops_number
        global_crops, local_crops, masks = b["global_crops"], b["local_crops"], b["masks"]
        mask_indices_list, masks_weight = b["mask_indices_list"], b["masks_weight"]
        n_masked_patches, upperbound = mask_indices_list.shape[0], b["upperbound"]
        n_terms = 2 * n_local + 2

        with torch.no_grad():
            t = self.teacher.backbone(global_crops, is_training=True)
            cls = t["x_norm_clstoken"].chunk(2)
            cls = torch.cat((cls[1], cls[0]))
            patch = t["x_norm_patchtokens"]
            buf = patch.new_zeros(upperbound + cls.shape[0], patch.shape[-1])
            buf[: cls.shape[0]].copy_(cls)
            torch.index_select(patch.flatten(0, 1), dim=0, index=mask_indices_list,
                               out=buf[cls.shape[0]: cls.shape[0] + n_masked_patches])
            after = self.teacher.dino_head(buf)
            t_cls, t_patch = after[: cls.shape[0]], after[cls.shape[0]: cls.shape[0] + n_masked_patches]
            if self.sinkhorn:
                t_dino = self.dino_loss.sinkhorn_knopp_teacher(t_cls, teacher_temp=teacher_temp).view(2, -1, t_cls.shape[-1])
                t_ibot = self.ibot_loss.sinkhorn_knopp_teacher(t_patch, teacher_temp=teacher_temp,
                                                               n_masked_patches_tensor=b["n_masked_patches"])
            else:
                t_dino = self.dino_loss.softmax_center_teacher(t_cls, teacher_temp=teacher_temp).view(2, -1, t_cls.shape[-1])
                self.dino_loss.update_center(t_cls)
                t_ibot = self.ibot_loss.softmax_center_teacher(t_patch.unsqueeze(0), teacher_temp=teacher_temp).squeeze(0)
                self.ibot_loss.update_center(t_patch)

        g = self.student.backbone(global_crops, masks=masks, is_training=True)
        loc = self.student.backbone(local_crops, is_training=True)
        s_patch = g["x_norm_patchtokens"]
        sbuf = s_patch.new_zeros(upperbound, s_patch.shape[-1])
        sbuf[:n_masked_patches].copy_(torch.index_select(s_patch.flatten(0, 1), dim=0, index=mask_indices_list))
        inputs = [loc["x_norm_clstoken"], g["x_norm_clstoken"], sbuf]
        outs = self.student.dino_head(torch.cat(inputs)).split([x.shape[0] for x in inputs])
        s_local, s_global, s_masked = outs[0], outs[1], outs[2][:n_masked_patches]
        loss = self.dino_loss(student_output_list=s_local.chunk(n_local),
                              teacher_out_softmaxed_centered_list=t_dino) / n_terms
        loss = loss + self.dino_loss(student_output_list=[s_global],
                                     teacher_out_softmaxed_centered_list=[t_dino.flatten(0, 1)]) * 2 / n_terms
        loss = loss + self.cfg.dino.koleo_loss_weight * sum(self.koleo_loss(p) for p in g["x_norm_clstoken"].chunk(2))
        loss = loss + self.ibot_loss.forward_masked(s_masked, t_ibot, student_masks_flat=masks,
                                                    n_masked_patches=n_masked_patches, masks_weight=masks_weight)
        loss.backward()
        return loss.detach()


def _count_cpu_flash_attention() -> None:
    """torch's FLOP counter has formulas for the GPU attention kernels only: without these two,
    attention that SDPA runs on CPU (the teacher's, the longer sequences) counts as zero."""
    from torch.utils import flop_counter as fc

    ops = torch.ops.aten
    if not hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu") or \
            ops._scaled_dot_product_flash_attention_for_cpu in fc.flop_registry:
        return

    @fc.register_flop_formula(ops._scaled_dot_product_flash_attention_for_cpu)
    def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

    @fc.register_flop_formula(ops._scaled_dot_product_flash_attention_for_cpu_backward)
    def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def step_flops(variant, path) -> int:
    """FLOPs of one step's forward + backward (aten GEMMs, so the counter sees each matmul;
    CPU flash attention by the formula of the GPU kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    _count_cpu_flash_attention()
    counter = FlopCounterMode(display=False)
    with counter:
        variant(path)
    return int(counter.get_total_flops())


def matmul_gflops(path: str, n: int = 2048, dtype=torch.float32) -> float:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    fn = (lambda: gemm.onednn_mm_t(a, b)) if path == "onednn" else (lambda: a @ b)
    fn()
    best = float("inf")
    for _ in range(3):  # the peak is the best the machine does: the fastest of three
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args) -> dict:
    """One CPU class, this process: every variant interleaved, ``--rounds`` times."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = build_cfg(args)
    batch = make_batch(cfg, device)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    runs, flops, precisions = {}, {}, {}
    wanted = {"trainer": args.precision, "trainer-fp32": "fp32", "trainer-bf16": "bf16",
              "trainer-half-batches": args.precision}
    for name in [n for n in names if n in wanted]:
        if name == "trainer-bf16" and device.type != "cpu":
            continue
        split = "true" if name == "trainer-half-batches" else None
        vcfg = build_cfg(argparse.Namespace(**{**vars(args), "precision": wanted[name], "half_batches": split}))
        if name == "trainer-half-batches" and use_half_batches(build_cfg(args), device, True):
            continue  # the default step is split already
        tv = TrainerVariant(vcfg, batch, device)
        if name in ("trainer-fp32", "trainer-bf16") and any(p == tv.step.precision for p in precisions.values()):
            continue  # the default already runs this precision here
        label = f"{name} [{tv.step.precision}]" if name == "trainer" else name
        runs[label] = partial(tv, None)
        precisions[label] = tv.step.precision
        if "fp32" not in flops:  # aten GEMMs in fp32, one thread team: the counter sees every matmul
            ftv = TrainerVariant(build_cfg(argparse.Namespace(  # (a dispatch mode is per thread)
                **{**vars(args), "precision": "fp32", "half_batches": "false"})), batch, device)
            flops["fp32"] = step_flops(ftv, "aten")
        flops[label] = flops["fp32"]
    if "dinov2" in names:
        if not args.dinov2_src:
            raise SystemExit("variant dinov2 needs --dinov2-src DIR (a checkout of facebookresearch/dinov2)")
        dv = DINOv2Variant(cfg, batch, device, args.dinov2_src)
        runs["dinov2"] = dv
        flops["dinov2"] = step_flops(dv, None)
    load_before = os.getloadavg()
    flops.pop("fp32", None)
    if "dinov2" in runs:
        precisions["dinov2"] = "fp32"
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    losses = {}
    peak, peak_bf16 = [], []
    for r in range(args.warmup + args.rounds):
        for name, fn in runs.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            losses[name] = fn()
            sync(device)
            if r >= args.warmup:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        print(f"   round {r + 1}/{args.warmup + args.rounds}: " + ", ".join(
            f"{k} {wall[k][-1]:.2f} s" for k in runs if wall[k]), file=sys.stderr, flush=True)
        if device.type == "cpu" and r >= args.warmup:
            peak.append(max(matmul_gflops(p) for p in (gemm.PATHS if gemm.onednn_available() else ("aten",))))
            if "bf16" in precisions.values():
                peak_bf16.append(matmul_gflops("aten", dtype=torch.bfloat16))
    auto = gemm.choose() if device.type == "cpu" else "aten"
    out = {"machine": machine.describe(), "isa_env": {k: os.environ[k] for k in AVX2_ENV if k in os.environ},
           "malloc": allocator.keep_freed_memory() if _keep(args) else {"malloc": "glibc defaults"},
           "config": {"preset": args.preset, "arch": cfg.model.arch, "patch": cfg.model.patch_size,
                      "batch": int(cfg.train.batch_size), "global": cfg.crops.global_crop_size,
                      "local": f"{cfg.crops.local_crops_number}x{cfg.crops.local_crop_size}",
                      "prototypes": cfg.dino.n_prototypes, "slice": bool(cfg.slice.enabled),
                      "centering": cfg.dino.centering, "precision": args.precision},
           "rounds": args.rounds, "gemm_auto": auto, "load_before": load_before, "load_after": os.getloadavg(),
           "peak_gflops": statistics.median(peak) if peak else None,
           "peak_gflops_bf16": statistics.median(peak_bf16) if peak_bf16 else None,
           "flops_per_step": flops, "variants": {}}
    for name in runs:
        s = statistics.median(wall[name])
        f = flops[name]
        rate = f / s / 1e9
        out["variants"][name] = {
            "precision": precisions[name], "s_per_step": s, "images_per_s": cfg.train.batch_size / s,
            "cpu_s_per_step": statistics.median(cpu[name]), "min": min(wall[name]), "max": max(wall[name]),
            "loss": losses[name], "gflops_per_s": rate,
            "fraction_of_peak": (rate / out["peak_gflops"]) if out["peak_gflops"] else None,
            "fraction_of_bf16_peak": (rate / out["peak_gflops_bf16"])
            if out["peak_gflops_bf16"] and precisions[name] == "bf16" else None}
    return out


def report(res: dict) -> None:
    m, c = res["machine"], res["config"]
    emulated = " (AVX2 EMULATED via " + " ".join(f"{k}={v}" for k, v in res["isa_env"].items()) + ")" if res["isa_env"] else ""
    print(f"\n== {machine.one_line(m)}{emulated}; malloc: {res['malloc']['malloc']}"
          + (" keeps freed memory (train.keep_freed_memory)" if "trim_threshold" in res["malloc"] else ""))
    print(f"   step: ViT-{c['arch']}/{c['patch']}, batch {c['batch']}, 2x{c['global']} + {c['local']} crops, "
          f"{c['prototypes']} prototypes, {c['centering']}, slice loss {'on' if c['slice'] else 'off'}, "
          f"{c['precision']}; median of {res['rounds']} interleaved rounds; "
          f"load average {res['load_before'][0]:.1f} -> {res['load_after'][0]:.1f}")
    fl = res["flops_per_step"]
    peak = res["peak_gflops"]
    pbf = res.get("peak_gflops_bf16")
    print("   FLOPs/step (fwd+bwd): " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in fl.items())
          + (f"; peak (2048^3 matmul, same rounds) fp32 {peak:.0f} GFLOP/s" if peak else "")
          + (f", bf16 {pbf:.0f} GFLOP/s" if pbf else ""))
    for name, v in res["variants"].items():
        frac = f"{100 * v['fraction_of_peak']:5.1f} % of fp32 peak" if v.get("fraction_of_peak") else ""
        if v.get("fraction_of_bf16_peak"):
            frac += f", {100 * v['fraction_of_bf16_peak']:.1f} % of bf16 peak"
        print(f"   {name:16s} {v['images_per_s']:7.2f} images/s {v['s_per_step']:7.3f} s/step "
              f"(min {v['min']:.3f} max {v['max']:.3f}) {v['cpu_s_per_step']:7.2f} CPU-s/step "
              f"{v['gflops_per_s']:7.1f} GFLOP/s {frac}")
    vs = res["variants"]
    if "dinov2" in vs:
        d = vs["dinov2"]
        for name in [k for k in vs if k.startswith("trainer")]:
            print(f"   {name} / dinov2: {vs[name]['images_per_s'] / d['images_per_s']:.2f}x wall, "
                  f"{d['cpu_s_per_step'] / vs[name]['cpu_s_per_step']:.2f}x CPU time")
    print(f"   fp32 GEMM path models.gemm picks here: {res['gemm_auto']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=["yardstick", "cpu-tiny"], default="yardstick",
                   help="yardstick: DESIGN.md's ViT-S/14 step; cpu-tiny: the demo's step")
    p.add_argument("--dinov2-src", help="a checkout of facebookresearch/dinov2 (adds the dinov2 variant)")
    p.add_argument("--variants", default=None, help="comma list of trainer (the default step: --precision, GEMM "
                   "path as chosen here), trainer-half-batches (the same with train.half_batches=true), "
                   "trainer-fp32, trainer-bf16, dinov2 (default: trainer,trainer-half-batches,trainer-fp32[,dinov2 with "
                   "--dinov2-src]); a variant whose precision the default already runs is left out, and "
                   "trainer-half-batches where the default step is split already")
    p.add_argument("--isa", default="native", help="comma list of native, avx2 (avx2 emulated in a child process)")
    p.add_argument("--malloc", default="keep", help="comma list of keep (train.keep_freed_memory, the default), "
                   "default (glibc's own thresholds); each in its own child process, DINOv2 beside it")
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="small")
    p.add_argument("--patch", type=int, default=14)
    p.add_argument("--registers", type=int, default=4)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--global-size", type=int, default=224)
    p.add_argument("--local-size", type=int, default=98)
    p.add_argument("--n-local", type=int, default=8)
    p.add_argument("--prototypes", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="auto",
                   help="train.precision of the trainer variant (auto: what a user gets)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variants is None:
        args.variants = ("trainer,trainer-half-batches,trainer-fp32,dinov2" if args.dinov2_src
                         else "trainer,trainer-half-batches,trainer-fp32")
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    results = []
    mallocs = [s.strip() for s in args.malloc.split(",") if s.strip()]
    if not mallocs or set(mallocs) - {"keep", "default"}:
        raise SystemExit(f"--malloc {args.malloc}: expected keep and/or default")
    for isa, malloc in [(i.strip(), m) for i in args.isa.split(",") if i.strip() for m in mallocs]:
        if isa not in ("native", "avx2"):
            raise SystemExit(f"--isa {isa}: expected native or avx2")
        env = dict(os.environ, **(AVX2_ENV if isa == "avx2" else {}))
        child_argv = [a for a in (argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run([sys.executable, __file__, *child_argv, "--malloc", malloc, "--child"], env=env,
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"the {isa} / malloc {malloc} measurement failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
