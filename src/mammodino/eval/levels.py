"""Breast-level scores: the mean of a breast's image scores.

Screening decisions are made per breast, from all its views (CC and MLO). A breast is a
patient + laterality; its probability vector is the mean over its images, its label the
highest of its images' labels (a finding seen in one view is a finding of the breast), and
its patient is kept for the patient-level bootstrap.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    >>> y = np.array([0, 1, 1]); breast = np.array(["a|L", "a|L", "a|R"]); g = np.array(["a", "a", "a"])
    >>> yb, pb, gb, keys = breast_level(y, p, breast, g)
    >>> yb.tolist(), pb[:, 1].round(2).tolist()
    ([1, 1], [0.3, 0.8])
"""

from __future__ import annotations

import numpy as np


def breast_level(y, probs, breast, groups):
    """Aggregate image rows to breasts -> (y, probs, groups, breast keys), sorted by key."""
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    keys, inverse = np.unique(np.asarray(breast).astype(str), return_inverse=True)
    n = len(keys)
    counts = np.bincount(inverse, minlength=n).astype(np.float64)
    summed = np.zeros((n, probs.shape[1]))
    np.add.at(summed, inverse, probs)
    yb = np.full(n, -1, dtype=np.int64)
    np.maximum.at(yb, inverse, y.astype(np.int64))
    gb = np.empty(n, dtype=object)
    gb[inverse] = np.asarray(groups, dtype=object)
    return yb, summed / counts[:, None], gb, keys
