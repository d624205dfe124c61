"""Fixtures of the evaluation tests: a hand-written cache (no indexer needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import write_tiny_cache


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """8 patients x L/R x CC/MLO FFDM + one 5-slice DBT volume + one skipped row."""
    return write_tiny_cache(tmp_path_factory.mktemp("tiny_cache"))
