"""The single input normalisation shared by trainer, embed, attention and exports."""

import numpy as np
import torch

from mammodino.models import preprocess


def test_known_values_numpy_and_torch():
    raw = np.array([[0, 32767.5, 65535]], dtype=np.float64).round().astype(np.uint16)
    x = preprocess.from_uint16(raw)
    assert x.dtype == np.float32 and x[0, 0] == 0.0 and x[0, 2] == 1.0
    assert np.allclose(preprocess.normalize(np.array([0.0, 0.5, 1.0])), [-2.0, 0.0, 2.0])
    t = preprocess.from_uint16(torch.tensor([0, 65535], dtype=torch.int32))
    assert torch.equal(preprocess.normalize(t), torch.tensor([-2.0, 2.0]))
    d = preprocess.describe()
    assert (d["mean"], d["std"], d["channels"]) == (0.5, 0.25, 1)
