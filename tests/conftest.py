"""Shared fixtures: the real data beside the checkout, and small phantom datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MAMMODINO_SHARED_DATA to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def rsna_dir(shared_data) -> Path:
    return _need(shared_data / "rsna")


@pytest.fixture(scope="session")
def dicom_headers_dir(shared_data) -> Path:
    return _need(shared_data / "dicom_headers")


@pytest.fixture(scope="session")
def label_tables_dir(shared_data) -> Path:
    return _need(shared_data / "label_tables")


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """12 FFDM images (3 patients x 2 sides x CC/MLO) and 2 DBT volumes, as DICOM + labels.csv."""
    from mammodino.synth.generate import generate_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(out, n_ffdm=12, n_dbt=2, seed=0)
    return out


@pytest.fixture(scope="session")
def phantom_cache(phantom_dir, tmp_path_factory) -> Path:
    """``phantom_dir`` indexed at a long side of 256."""
    from mammodino.data.indexer import index_folder

    out = tmp_path_factory.mktemp("phantom_cache")
    index_folder(phantom_dir, out, size=256, workers=1, progress=False)
    return out


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on 2 shared cores: one thread per test is 10x faster than two fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
