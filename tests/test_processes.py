"""clean_context: worker processes that do not inherit the parent's OpenCV thread pool."""

import sys

import cv2
import numpy as np
import pytest

from mammodino.processes import clean_context


def _blur_in_worker(seed: int) -> float:
    cv2.setNumThreads(1)  # where a forked child of a cv2-threaded parent hangs
    x = np.random.default_rng(seed).random((600, 600), dtype=np.float32)
    return float(cv2.GaussianBlur(x, (0, 0), 3).mean())


def test_a_worker_runs_cv2_after_the_parent_did():
    x = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
    cv2.GaussianBlur(x, (0, 0), 5)
    ctx = clean_context(["cv2"])
    with ctx.Pool(1) as pool:
        got = pool.map_async(_blur_in_worker, [1]).get(timeout=120)
    assert got[0] == pytest.approx(_blur_in_worker(1), rel=1e-6)


def test_start_method_is_forkserver_on_linux_else_spawn():
    want = "forkserver" if sys.platform.startswith("linux") else "spawn"
    assert clean_context().get_start_method() == want
