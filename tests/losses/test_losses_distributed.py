"""Two CPU processes (gloo) give what one process gives on the concatenated batch."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mammodino.losses import DINOLoss, SliceContrastLoss, iBOTPatchLoss, sinkhorn_knopp

WORLD = 2


def _data():
    g = torch.Generator().manual_seed(0)
    return {
        "logits": torch.randn(8, 12, generator=g),  # 4 samples per rank
        "patch_logits": torch.randn(7, 12, generator=g),  # 5 masked patches on rank 0, 2 on rank 1
        "s": torch.randn(8, 6, generator=g),
        "t": torch.randn(8, 6, generator=g),
        # rank 0 holds 3 DBT samples, rank 1 holds 1
        "is_dbt": torch.tensor([True, False, True, True, False, False, True, False]),
    }


def _worker(rank, init_file):
    torch.set_num_threads(1)
    d = _data()
    # single-process references on the whole batch
    ref_sk = sinkhorn_knopp(d["logits"], 0.07)
    ref_ibot = iBOTPatchLoss(12).sinkhorn_knopp_teacher(d["patch_logits"], 0.07, torch.tensor([7]))
    ref_center = DINOLoss(12)
    ref_center.update_center(d["logits"])
    s_full = d["s"].clone().requires_grad_(True)
    ref_loss = SliceContrastLoss(0.1)(s_full, d["t"], d["is_dbt"])
    ref_loss.backward()

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        rows = slice(4 * rank, 4 * rank + 4)
        sk = sinkhorn_knopp(d["logits"][rows], 0.07)
        assert torch.allclose(sk, ref_sk[rows], atol=1e-6), "sinkhorn"
        prow = slice(0, 5) if rank == 0 else slice(5, 7)
        ibot = iBOTPatchLoss(12).sinkhorn_knopp_teacher(d["patch_logits"][prow], 0.07,
                                                        torch.tensor([prow.stop - prow.start]))
        assert torch.allclose(ibot, ref_ibot[prow], atol=1e-6), "ibot sinkhorn"
        center = DINOLoss(12)
        center.update_center(d["logits"][rows])
        assert torch.allclose(center.center, ref_center.center, atol=1e-6), "centre"
        s = d["s"][rows].clone().requires_grad_(True)
        loss = SliceContrastLoss(0.1)(s, d["t"][rows], d["is_dbt"][rows])
        loss.backward()
        # DDP averages gradients over ranks: grad / WORLD is what the parameters see.
        assert torch.allclose(s.grad / WORLD, s_full.grad[rows], atol=1e-6), "slice gradient"
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        assert torch.allclose(mean_loss / WORLD, ref_loss.detach(), atol=1e-6), "slice loss"
    finally:
        dist.destroy_process_group()


def test_losses_across_two_ranks_equal_the_single_process_result(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(str(tmp_path / "init"),), nprocs=WORLD, join=True)
