"""Two half-batches on two threads (train.half_batches): the same step as one batch, reproducibly."""

import sys
from pathlib import Path

import pytest
import torch

from mammodino.config import load_config
from mammodino.train.half_batches import HalfBatches, _half
from mammodino.train.ssl_model import SSLModel
from mammodino.train.step import build_train_step, use_half_batches

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from train_step import make_batch  # noqa: E402  (the benchmark's batch of the training shapes)

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _run(over, steps=3, batch_over=()):
    cfg = load_config("cpu-tiny", ["train.precision=fp32", *over])
    torch.manual_seed(0)
    model = SSLModel(cfg)
    step = build_train_step(cfg, model, CPU)
    batch = make_batch(load_config("cpu-tiny", list(batch_over)), CPU)
    losses = [step(200 + i, [batch]).losses for i in range(steps)]
    return model, losses


def test_the_split_step_equals_the_one_batch_step(two_threads):
    """Same losses and weights after 3 AdamW steps (fp32; GEMM blocking differs, so not bitwise)."""
    whole, whole_losses = _run(["train.half_batches=false"])
    split, split_losses = _run(["train.half_batches=true"])
    assert whole.student.halves is None and split.student.halves is not None
    for a, b in zip(whole_losses, split_losses):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    for (name, a), b in zip(whole.student.named_parameters(), split.student.parameters()):
        assert torch.allclose(a, b, atol=2e-5), name


def test_the_split_step_is_reproducible_with_stochastic_depth(two_threads):
    """Drop path draws from per-half generators seeded by the step: two runs agree bitwise,
    and the draws are not all the same (the generator is really used)."""
    over = ["train.half_batches=true", "model.drop_path_rate=0.3"]
    a, la = _run(over)
    b, lb = _run(over)
    assert [x["loss"] for x in la] == [x["loss"] for x in lb]
    for p, q in zip(a.student.parameters(), b.student.parameters()):
        assert torch.equal(p, q)
    _, lw = _run(["train.half_batches=false", "model.drop_path_rate=0.3"])
    assert [x["loss"] for x in lw] != [x["loss"] for x in la]  # other draws, same distribution


def test_gradient_accumulation_adds_the_micro_batches(two_threads):
    cfg = load_config("cpu-tiny", ["train.precision=fp32", "train.half_batches=true", "train.grad_accum=2"])
    torch.manual_seed(0)
    model = SSLModel(cfg)
    step = build_train_step(cfg, model, CPU)
    batch = make_batch(load_config("cpu-tiny", ["train.batch_size=8"]), CPU)
    result = step(200, [batch, batch])
    assert result.applied and result.images == 16 and result.grad_norm > 0


def test_half_of_a_pass_takes_its_crops_masks_and_masked_rows():
    class Backbone:
        patch_size = 16

    x = torch.zeros(4, 1, 32, 32)  # 4 crops of 2 x 2 patches
    masks = torch.zeros(4, 4, dtype=torch.bool)
    masks[0, 1] = masks[1, 3] = masks[2, 0] = masks[3, 2] = True
    rows = masks.flatten().nonzero().flatten()  # 1, 7, 8, 14
    x0, m0, r0 = _half(x, masks, rows, Backbone(), 0)
    x1, m1, r1 = _half(x, masks, rows, Backbone(), 1)
    assert x0.shape[0] == x1.shape[0] == 2
    assert r0.tolist() == [1, 7] and r1.tolist() == [0, 6]  # rows of crops 2 and 3, as in crops 0 and 1
    assert torch.equal(m1, masks[2:])


def test_workers_run_one_intra_op_thread_and_leave_the_main_thread_alone(two_threads):
    runner = HalfBatches()
    try:
        assert torch.get_num_threads() == 2
        assert [f.result() for f in [runner.pool.submit(torch.get_num_threads) for _ in range(4)]] == [1, 1, 1, 1]
    finally:
        runner.close()


@pytest.mark.parametrize("over, threads, expected", [
    ([], 2, False),                                 # shipped default: off (no faster `pretrain` on 2 cores)
    (["train.half_batches=auto"], 2, True),         # auto: a small ViT on 2 CPU threads splits
    (["train.half_batches=auto"], 1, False),        # one thread: nothing to gain
    (["train.half_batches=auto"], 4, False),        # more threads: not measured, one batch
    (["train.half_batches=true"], 4, True),
    (["train.half_batches=auto", "train.deterministic=true"], 2, False),  # bit-exact runs: one batch
    (["train.compile=true", "train.half_batches=true"], 2, False),
    (["train.half_batches=auto", "model.arch=small"], 2, False),  # ViT-S: its GEMMs scale already
    (["model.arch=small", "train.half_batches=true"], 2, True),
])
def test_when_the_step_splits(over, threads, expected):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert use_half_batches(load_config("cpu-tiny", over), CPU, True) is expected
        assert use_half_batches(load_config("cpu-tiny", over), CPU, False) is False  # DDP/FSDP-wrapped
        assert use_half_batches(load_config("cpu-tiny", over), torch.device("cuda"), True) is False
    finally:
        torch.set_num_threads(before)
