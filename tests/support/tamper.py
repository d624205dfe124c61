"""Tampering with a training run from outside: no test seam in ``pretrain``'s signature.

``tampered_batches(hook)`` wraps :class:`mammodino.train.step.TrainStep` for the duration of
a ``with`` block, so every micro-batch of step ``s`` passes through ``hook(s, batch)`` before
the production step sees it (e.g. NaN injected into a crop). Used by
``tests/train/test_trainer.py`` and ``benchmarks/faults.py``.
"""

from __future__ import annotations

import contextlib

from mammodino.train.step import TrainStep


@contextlib.contextmanager
def tampered_batches(hook):
    original = TrainStep.__call__

    def call(self, step, micro_batches):
        return original(self, step, (hook(step, b) for b in micro_batches))

    TrainStep.__call__ = call
    try:
        yield
    finally:
        TrainStep.__call__ = original
