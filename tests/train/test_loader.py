"""The training loader's workers start clean: a parent that has run parallel OpenCV calls
(segmentation, previews) must still get batches from worker processes. Forked workers hung
forever in ``worker_init`` (cv2.setNumThreads) after such a call; each case runs in a fresh
interpreter with a timeout so that a regression fails instead of hanging the suite."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import cv2, numpy as np, torch
    from torch.utils.data import TensorDataset
    from mammodino.train.loader import StepBatches, step_loader

    x = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
    for _ in range(3):
        cv2.GaussianBlur(x, (0, 0), 5)  # the parent's cv2 thread pool is now running
    data = TensorDataset(torch.arange(32, dtype=torch.float32))
    batches = StepBatches(lambda step: list(range(8 * step % 32, 8 * step % 32 + 8)), 8, 0, 3)
    got = [b[0].tolist() for b in step_loader(data, batches, {workers})]
    assert got == [[float(v) for v in range(8 * s, 8 * s + 8)] for s in range(3)], got
    print("ok")
""")


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_start_after_the_parent_ran_parallel_opencv(workers):
    try:
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(workers=workers)], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the loader's workers hung after the parent ran a parallel cv2 call")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
