"""Phantom sets for the synth tests (the shared ``phantom_dir`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def density_set(tmp_path_factory) -> Path:
    """8 FFDM patients: two shuffled blocks of A-D, so every density class twice."""
    from mammodino.synth.generate import generate_phantoms

    out = tmp_path_factory.mktemp("density_set")
    generate_phantoms(out, n_ffdm=32, n_dbt=0, seed=3)
    return out


@pytest.fixture(scope="session")
def dbt_set(tmp_path_factory) -> Path:
    """6 DBT volumes of the default shape: 3 with a lesion (shuffled pairs)."""
    from mammodino.synth.generate import generate_phantoms

    out = tmp_path_factory.mktemp("dbt_set")
    generate_phantoms(out, n_ffdm=0, n_dbt=6, seed=5)
    return out
