"""Evaluation of a frozen encoder: features, probes, metrics, task adapters, plots, report.

The entry points: :func:`run_probe` with :class:`ProbeOptions` (the ``probe`` command as a function),
:func:`load_features` and :func:`mammodino.eval.embedding.embed_cache`.
"""

from mammodino.eval.features import FeatureSet, load_features
from mammodino.eval.probing import ProbeOptions, run_probe

__all__ = ["FeatureSet", "ProbeOptions", "load_features", "run_probe"]
