"""Fine-tuning (``mammodino finetune``) and inference (``mammodino predict``).

From a pretrained encoder to a screening model: a head (linear on [CLS, mean patch], or
gated attention pooling over patch tokens) trained on a labelled task with the probe's
task adapters and patient split, layer-wise lr decay, class-balanced batches, early stopping
on validation AUC, calibrated probabilities and exact resume; then per-image, per-breast and
per-exam scores for new mammograms.

Example:
    >>> from mammodino.finetune import finetune, load_finetune_config, load_finetuned
    >>> cfg = load_finetune_config("cpu-tiny")
    >>> finetune("runs/tiny", "cache/", ["phantom-lesion"], "phantoms/labels.csv", "runs/ft", cfg)
    >>> model, config = load_finetuned("runs/ft")
"""

from mammodino.finetune.config import load_finetune_config
from mammodino.finetune.model import FineTuneModel, load_finetuned
from mammodino.finetune.trainer import finetune

__all__ = ["finetune", "load_finetune_config", "load_finetuned", "FineTuneModel"]
