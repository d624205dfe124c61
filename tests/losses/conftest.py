"""One torch thread for these tests: they use tiny models, and two OpenMP threads spinning
on a shared 2-core machine made them 10-20x slower (restored after each test)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
