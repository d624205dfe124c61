"""The backbone passes of a 2-thread CPU step as two half-batches on two threads.

With two intra-op threads every one of a small ViT's ~16,000 ops per step forks and joins an
OpenMP team, and the small ones (LayerNorm, GELU, copies of a 192-wide model) barely gain
from the second thread. Two half-batches, each on its own Python thread with one intra-op
thread, run the same kernels with no fork-join at all. Only the backbone passes are split
(teacher forward, student forward and backward, global and local crops): the heads and the
losses see the whole batch, joined, so every batch statistic (centring, Sinkhorn-Knopp,
KoLeo's nearest neighbours, iBOT's per-image weights) is that of the whole batch, as before.

The backward of the halves runs in the join's backward: each half's gradients are computed
on its own thread (``torch.autograd.grad``, no shared accumulation) and added to the
parameters' ``.grad`` in a fixed order, so a step is as deterministic as the one-thread-team
step. Stochastic depth draws from a per-half generator seeded from the step's generator
(:func:`mammodino.models.layers.sample_generator`).

It ships off (``train.half_batches: false``): the bare `cpu-tiny` step measured 5-7 % faster
on 2 cores, but the whole ``pretrain`` command was not, its loader worker taking the cores
back (README, Design decisions); ``auto`` or ``true`` turn it on where the cores are free.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from mammodino.models import gemm, layers

N_HALVES = 2


def _one_intra_op_thread() -> None:
    torch.get_num_threads()  # PyTorch sets a new thread's team size on first use: do it now ...
    torch.set_num_threads(1)  # ... then make this thread's team one thread


class HalfBatches:
    """Runs ``backbone.forward_cls_and_patches`` calls split in two along the batch."""

    def __init__(self):
        main_threads = torch.get_num_threads()
        self.pool = ThreadPoolExecutor(N_HALVES, thread_name_prefix="half-batch", initializer=_one_intra_op_thread)
        list(self.pool.map(lambda _: None, range(N_HALVES)))  # start both now, not inside a step
        torch.set_num_threads(main_threads)  # (set_num_threads also sets the default new threads take)
        # the fp32 GEMM path at one thread, measured (or read from the cache) on one worker while
        # the other waits: two workers measuring at once inside the first step would time each other
        self.pool.submit(gemm.choose).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def cls_and_patches(self, backbone, calls: list[tuple]) -> list[tuple[Tensor, Tensor]]:
        """``calls``: ``(x, masks, patch_rows)`` per pass (patch_rows: sorted flat indices into
        the x.shape[0] x N patches, or None). Returns ``(cls, patches)`` per pass, equal to
        ``backbone.forward_cls_and_patches(x, masks, patch_rows)`` on the whole batch."""
        grad = torch.is_grad_enabled()
        cast = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
        seeds = [int(s) for s in torch.randint(0, 2**62, (N_HALVES,))]  # from the step's generator
        halves = [[_half(x, masks, rows, backbone, h) for x, masks, rows in calls] for h in range(N_HALVES)]

        def run(h: int) -> list[tuple[Tensor, Tensor]]:
            gen = torch.Generator().manual_seed(seeds[h])
            with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=cast[1], enabled=cast[0]), \
                    layers.sample_generator(gen):
                return [backbone.forward_cls_and_patches(*args) for args in halves[h]]

        outs = list(self.pool.map(run, range(N_HALVES)))
        flat = [t for out in outs for pair in out for t in pair]
        if grad:
            params = [p for p in backbone.parameters() if p.requires_grad]
            # the halves' outputs go in as a plain list, so the main thread's backward stops at
            # the join and never walks their graphs; the anchor makes the outputs need grad
            anchor = torch.zeros((), requires_grad=True)
            joined = _Join.apply(self, params, flat, anchor)
        else:
            n = len(flat) // N_HALVES
            joined = [torch.cat((a, b)) for a, b in zip(flat[:n], flat[n:])]
        return [(joined[2 * i], joined[2 * i + 1]) for i in range(len(calls))]

    def backward(self, params: list[Tensor], halves: list[list[Tensor]], grads: list[list[Tensor | None]]) -> None:
        """Each half's parameter gradients on its own thread, added to ``.grad`` in half order."""
        def run(h: int):
            pairs = [(t, g) for t, g in zip(halves[h], grads[h]) if g is not None and t.requires_grad]
            if not pairs:
                return [None] * len(params)
            return torch.autograd.grad([t for t, _ in pairs], params, [g for _, g in pairs], allow_unused=True)

        results = list(self.pool.map(run, range(N_HALVES)))
        with torch.no_grad():
            for i, p in enumerate(params):
                parts = [r[i] for r in results if r[i] is not None]
                if not parts:
                    continue
                total = parts[0] if len(parts) == 1 else parts[0] + parts[1]
                if p.grad is None:
                    p.grad = total
                else:
                    p.grad += total


def _half(x: Tensor, masks: Tensor | None, rows: Tensor | None, backbone, h: int) -> tuple:
    """Inputs of half ``h`` of a pass: its crops, their masks and their masked rows."""
    b = x.shape[0]
    lo, hi = h * b // N_HALVES, (h + 1) * b // N_HALVES
    if rows is not None:
        n = (x.shape[-2] // backbone.patch_size) * (x.shape[-1] // backbone.patch_size)
        rows = rows[(rows >= lo * n) & (rows < hi * n)] - lo * n
    return x[lo:hi], None if masks is None else masks[lo:hi], rows


class _Join(torch.autograd.Function):
    """Concatenates the halves' outputs; its backward runs the halves' backward on their threads."""

    @staticmethod
    def forward(ctx, runner: HalfBatches, params: list[Tensor], flat: list[Tensor], anchor: Tensor):
        n = len(flat) // N_HALVES
        ctx.runner, ctx.params, ctx.n = runner, params, n
        ctx.halves = [list(flat[:n]), list(flat[n:])]
        return tuple(torch.cat((a.detach(), b.detach())) for a, b in zip(flat[:n], flat[n:]))

    @staticmethod
    def backward(ctx, *grads: Tensor | None):
        split = [[None] * ctx.n for _ in range(N_HALVES)]
        for i, g in enumerate(grads):
            if g is None:
                continue
            first = ctx.halves[0][i].shape[0]
            split[0][i], split[1][i] = g[:first], g[first:]
        ctx.runner.backward(ctx.params, ctx.halves, split)
        ctx.halves = None
        return None, None, None, None
