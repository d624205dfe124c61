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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forkserver: Linux only")
def test_preloaded_modules_come_from_the_parents_path(tmp_path):
    """Two copies of a preloaded module, one on the interpreter's default path (as the
    installed package is) and one that the parent puts first (another checkout's src): the
    workers run the parent's copy. CPython's forkserver does not apply the parent's sys.path
    to its server, which imported the preload from the default path, so the index workers
    of a benchmark run from a second worktree ran the installed package. In a fresh
    interpreter, so that no forkserver of this test session is running yet."""
    import os
    import subprocess
    import textwrap

    for name in ("installed", "checkout"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "twin.py").write_text(f"def where(_):\n    return {name!r}\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path / "checkout")!r})
        import twin
        from mammodino.processes import clean_context
        if __name__ == "__main__":
            with clean_context(["twin"]).Pool(1) as pool:
                print(twin.where(0), pool.map(twin.where, [0])[0])
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["checkout", "checkout"]
