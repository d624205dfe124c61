"""The DDSM films' per-film segmentation figures, computed once per test session (the RSNA
boxed images are in the top-level conftest: the readers' tests use them too)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ddsm_results(shared_data):
    """Per-film IoU of the production segment() on the 66 DDSM films (benchmark code path):
    list of dicts with breast / no_pec IoU and the held-out flag."""
    import sys

    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from segmentation import run_ddsm

    return run_ddsm(root)
