"""Stochastic depth at DINOv2's small rates (<= 0.1) on CPU runs the dropped samples' branch
not at all, yet is DropPath: the same draw, values and gradients, and the FLOPs fall."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mammodino.models import gemm, layers
from mammodino.models.layers import Block, drop_add_residual_kept_rows


def _kept_count(seed: int, b: int, p: float) -> int:
    torch.manual_seed(seed)
    return int(torch.empty(b).bernoulli_(1.0 - p).sum())


def _run(block: Block, x: torch.Tensor, seed: int):
    block.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out = block(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).square().sum().backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in block.named_parameters()}


@pytest.mark.parametrize("seed", [0, 3])
def test_kept_rows_equal_droppath_in_values_and_gradients(monkeypatch, seed):
    torch.manual_seed(0)
    block = Block(64, 4, drop_path=0.1, layerscale_init=1.0).train()
    x = torch.randn(24, 9, 64)
    assert 0 < _kept_count(seed, 24, 0.1) < 24  # some samples are dropped by this draw
    ours = _run(block, x, seed)
    monkeypatch.setattr(layers, "stochastic_depth_kept_rows", lambda x: False)  # plain DropPath
    ref = _run(block, x, seed)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-5, atol=1e-5)
    for name, g in ref[2].items():
        torch.testing.assert_close(ours[2][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_a_dropped_sample_passes_through_unchanged_and_costs_no_flops():
    torch.manual_seed(0)
    x = torch.randn(10, 5, 16)
    calls = []

    def branch(t):
        calls.append(t.shape[0])
        return torch.ones_like(t)

    seed = next(s for s in range(100) if 0 < _kept_count(s, 10, 0.3) < 10)
    torch.manual_seed(seed)
    kept_mask = torch.empty(10).bernoulli_(0.7).bool()
    torch.manual_seed(seed)
    out = drop_add_residual_kept_rows(x, branch, 0.3)
    assert calls == [int(kept_mask.sum())]  # the branch saw the kept samples only
    assert torch.equal(out[~kept_mask], x[~kept_mask])
    torch.testing.assert_close(out[kept_mask], x[kept_mask] + 1 / 0.7)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _draws(seed: int, b: int, p: float) -> tuple[int, int]:
    """Kept samples of the attention then the MLP branch (one stream, in that order)."""
    torch.manual_seed(seed)
    return int(torch.empty(b).bernoulli_(1 - p).sum()), int(torch.empty(b).bernoulli_(1 - p).sum())


def test_the_flop_counter_sees_the_dropped_samples_skipped():
    torch.manual_seed(0)
    block = Block(64, 4, drop_path=0.1, layerscale_init=1.0)
    x = torch.randn(32, 9, 64)
    gemm.set_path("aten")  # the counter sees aten matmuls, not oneDNN's
    try:
        attn, mlp = _flops(lambda: block._attn_residual(x)), _flops(lambda: block._ffn_residual(x))
        seed = next(s for s in range(100) if sum(_draws(s, 32, 0.1)) < 62)
        k_attn, k_mlp = _draws(seed, 32, 0.1)
        torch.manual_seed(seed)
        dropped = _flops(lambda: block.train()(x))
    finally:
        gemm.set_path(None)
    # each branch is linear in the batch: its FLOPs scale with its kept samples
    assert dropped == pytest.approx(attn * k_attn / 32 + mlp * k_mlp / 32, rel=1e-6)
    assert dropped < attn + mlp


def test_a_gpu_or_compiled_block_keeps_plain_droppath():
    x = torch.zeros(2, 3)
    assert layers.stochastic_depth_kept_rows(x)
    assert not layers.stochastic_depth_kept_rows(x.to("meta"))
