"""Fine-tuning inputs: the embed geometry, tissue-aware training crops, a step-indexed batch plan.

Geometry: the one ``embed`` uses (:func:`mammodino.eval.embedding.fit_to_square`,
``pad_to_square``, ``models.preprocess.normalize``): long side = the input size, zero padding
to a square on the right / top / bottom, chest wall at the left edge. Evaluation and
``predict`` feed the whole cached image; training feeds a crop of it drawn by the
pretraining crop sampler (:func:`mammodino.data.crops.sample_tissue_box`: area
``data.crop_scale`` of the breast box, centred on tissue, at least ``data.crop_min_tissue``
tissue) with the pretraining photometric augmentation (:class:`~mammodino.data.augment.GrayAugment`).
``token_mask`` marks the patches that hold image, so pooling ignores the padding.

Determinism (what makes ``--resume`` exact): the rows of step ``s`` are a pure function of
``(seed, s)`` (:class:`BatchPlan`) and a sample's crop and augmentation of ``(seed,
position)`` (``position = s * batch + j``, the pretraining dataset's ``sample_rng``).
"""

from __future__ import annotations


import numpy as np
import torch

from mammodino.data.augment import GrayAugment
from mammodino.data.batch_plan import EpochStream
from mammodino.data.crops import TissueMap, sample_tissue_box
from mammodino.data.dataset import sample_rng
from mammodino.eval.embedding import fit_to_square, input_size, pad_to_square
from mammodino.models.preprocess import from_uint16, normalize
from mammodino.train.loader import worker_context, worker_init

ASPECT = (3 / 4, 4 / 3)
_EPOCH_STREAM = 11  # last seed word of the row permutation of each epoch


def token_mask_for(size: int, patch: int, placement) -> np.ndarray:
    """bool (N,) over the ``(size / patch)^2`` patch grid: True where a patch overlaps the image."""
    y0, x0, h, w = placement
    g = size // patch
    edges = np.arange(g) * patch
    rows = (edges < y0 + h) & (edges + patch > y0)
    cols = (edges < x0 + w) & (edges + patch > x0)
    return (rows[:, None] & cols[None, :]).reshape(-1)


def model_input(img: np.ndarray, size: int, patch: int, augment=None) -> tuple[np.ndarray, np.ndarray]:
    """Cache pixels (uint16 or [0, 1]) -> (normalised (size, size) float32, token mask (N,)).

    The same steps as :func:`mammodino.eval.embedding.prepare_input`; ``augment`` (a callable
    on the resized [0, 1] image) runs where ``prepare_input`` applies a perturbation."""
    x = from_uint16(img) if img.dtype == np.uint16 else np.asarray(img, dtype=np.float32)
    resized, place = fit_to_square(x, size)
    if augment is not None:
        resized = augment(resized)
    return normalize(pad_to_square(resized, size, place)), token_mask_for(size, patch, place)


class FineTuneDataset(torch.utils.data.Dataset):
    """Items of a :class:`~mammodino.finetune.labels.LabelledSet`.

    ``train=True``: ``dataset[(position, row)]`` is a random crop + augmentation drawn from
    ``sample_rng(seed, position)``. ``train=False``: ``dataset[row]`` is the whole image.
    """

    def __init__(self, ls, size: int, patch: int, cfg=None, train: bool = False, seed: int = 0):
        self.ls = ls
        self.size = input_size(size, patch)
        self.patch = patch
        self.train = train
        self.seed = int(seed)
        if train:
            a = cfg.augment
            self.augment = GrayAugment(jitter_prob=float(a.jitter_prob), brightness=float(a.brightness),
                                       contrast=float(a.contrast), gamma=tuple(float(v) for v in a.gamma),
                                       gamma_prob=float(a.gamma_prob), blur_prob=(float(a.blur_prob),) * 3,
                                       blur_sigma=tuple(float(v) for v in a.blur_sigma), solarize_prob=0.0)
            self.crop_scale = tuple(float(v) for v in cfg.data.crop_scale)
            self.crop_min_tissue = float(cfg.data.crop_min_tissue)

    def __len__(self) -> int:
        return len(self.ls)

    def _pixels(self, row: int) -> np.ndarray:
        im, z = self.ls.images[row], int(self.ls.slices[row])
        return im.image(None if z < 0 else z)

    def __getitem__(self, key) -> dict:
        if self.train:
            position, row = int(key[0]), int(key[1])
            rng = sample_rng(self.seed, position)
            img = self._pixels(row)
            box, _frac, _ok = sample_tissue_box(TissueMap(self.ls.images[row].breast_mask()), rng, self.crop_scale, ASPECT,
                                                self.crop_min_tissue, 10, "breast_box")
            region = img[box.y0:box.y1, box.x0:box.x1]
            x, tm = model_input(region, self.size, self.patch, augment=lambda r: self.augment(r, rng, "local"))
        else:
            row = int(key)
            x, tm = model_input(self._pixels(row), self.size, self.patch)
        y = self.ls.y[row]
        return {"x": torch.from_numpy(x)[None], "token_mask": torch.from_numpy(tm),
                "y": torch.as_tensor(y, dtype=torch.long), "row": row}


class BatchPlan:
    """The training rows of every step, a pure function of ``(seed, step)``.

    ``balance="sampler"``: rows drawn with replacement, each class (multi-label: "any
    positive" vs none) equally likely -- a 2 %-positive task sees half positives. Otherwise
    epochs of a seeded permutation of the rows, cut into consecutive batches
    (:class:`~mammodino.data.batch_plan.EpochStream`, as pretraining reads its streams).
    """

    def __init__(self, rows: np.ndarray, strata: np.ndarray, batch_size: int, seed: int, balance: str):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.balanced = balance == "sampler"
        strata = np.asarray(strata)
        counts = {c: int((strata == c).sum()) for c in np.unique(strata)}
        w = np.array([1.0 / counts[c] for c in strata], dtype=np.float64)
        self.p = w / w.sum()
        # the pretraining plan's epoch stream, with the seed words fine-tune runs have always used
        self._stream = EpochStream(self.rows, (self.seed,), suffix_words=(_EPOCH_STREAM,))

    def batch_keys(self, step: int) -> list[tuple[int, int]]:
        """``[(position, row), ...]`` of step ``step``."""
        n, b = len(self.rows), self.batch_size
        positions = np.arange(step * b, (step + 1) * b, dtype=np.int64)
        if self.balanced:
            rng = np.random.default_rng([self.seed, int(step), 7])
            picks = rng.choice(n, size=b, replace=True, p=self.p)
            return [(int(p), int(self.rows[k])) for p, k in zip(positions, picks)]
        return [(int(p), r) for p, r in zip(positions, self._stream.take(step * b, b))]

    def epochs(self, steps: int) -> float:
        return steps * self.batch_size / max(len(self.rows), 1)


def eval_loader(dataset: FineTuneDataset, rows, batch_size: int, workers: int = 0):
    """Batches of whole images of ``rows``, in order."""
    return torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, [int(r) for r in rows]), batch_size=batch_size,
                                       shuffle=False, num_workers=workers, worker_init_fn=worker_init if workers else None,
                                       multiprocessing_context=worker_context(workers))


def n_tokens(size: int, patch: int) -> int:
    return (input_size(size, patch) // patch) ** 2


__all__ = ["FineTuneDataset", "BatchPlan", "eval_loader", "model_input", "token_mask_for", "n_tokens"]
