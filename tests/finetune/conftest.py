"""Fixtures of the fine-tuning tests."""

from __future__ import annotations

import pytest

from ._helpers import write_lesion_cache


@pytest.fixture(scope="session")
def lesion_data(tmp_path_factory):
    """(cache, labels.csv) of 16 patients x 4 views (the lesion task is learnable)."""
    return write_lesion_cache(tmp_path_factory.mktemp("ft_lesion"))
