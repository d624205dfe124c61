"""A PNG grid that shows what the pretraining sampler feeds the model.

One row per sample: the cached image (slice ``z`` for DBT) with the breast outline and the
crop boxes drawn on it, then the two global crops (as augmented, iBOT-masked patches tinted
red, the patches eligible for masking outlined), then the local crops. A person can check at a
glance that crops and masks sit on breast tissue, and how strong the augmentation is.

Colours: green = global crop 1, blue = global crop 2 (the same box as crop 1 for DBT, on
slice ``z'``), yellow = local crops, magenta = breast outline / tissue patches, red = masked.

Example:
    >>> save_preview(PretrainDataset(["cache/"], cfg), "crop_preview.png", n=8)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mammodino import atomic
from mammodino.data.augment import NORM_MEAN, NORM_STD
from mammodino.data.batch_plan import BatchPlan, SampleKey
from mammodino.models.preprocess import from_uint16

GREEN = (60, 200, 60)
BLUE = (255, 150, 30)
YELLOW = (0, 220, 240)
MAGENTA = (220, 60, 220)
RED = (40, 40, 255)
WHITE = (255, 255, 255)
GAP = 6
FONT = cv2.FONT_HERSHEY_SIMPLEX


def preview_keys(dataset, n: int, seed: int | None = None, step: int = 0) -> list[SampleKey]:
    """The keys of a batch of ``n`` as training would draw it (DBT share, mask assignment)."""
    cfg = dataset.cfg
    plan = BatchPlan.from_indices(
        dataset.ffdm_indices,
        dataset.dbt_indices,
        int(n),
        seed=dataset.seed if seed is None else int(seed),
        dbt_fraction=float(cfg.data.dbt_fraction),
        mask_probability=float(cfg.ibot.mask_sample_probability),
        mask_ratio_min_max=tuple(cfg.ibot.mask_ratio_min_max),
    )
    return plan.batch_keys(step)


def _gray_to_bgr(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(x * 255.0, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _crop_panel(crop, mask_flat, tissue_flat, size: int, min_tissue: float | None) -> np.ndarray:
    x = crop.numpy()[0] * NORM_STD + NORM_MEAN  # undo the normalisation
    panel = _gray_to_bgr(cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA))
    if mask_flat is None:
        return panel
    grid = int(round(np.sqrt(mask_flat.numel())))
    masked = cv2.resize(mask_flat.numpy().reshape(grid, grid).astype(np.uint8), (size, size),
                        interpolation=cv2.INTER_NEAREST).astype(bool)
    tint = panel.copy()
    tint[masked] = RED
    panel = cv2.addWeighted(tint, 0.45, panel, 0.55, 0)
    if min_tissue is not None:
        eligible = (tissue_flat.numpy().reshape(grid, grid) >= min_tissue).astype(np.uint8)
        eligible = cv2.resize(eligible, (size, size), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(eligible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(panel, contours, -1, MAGENTA, 1)
    return panel


def _label(img: np.ndarray, text: str, org=(4, 14), color=WHITE, scale=0.42) -> None:
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def _source_panel(dataset, sample: dict, height: int) -> np.ndarray:
    item = dataset.item(sample["index"])
    z1, z2 = sample["slices"]
    image = item.image(z1) if item.is_dbt else item.image()
    mask = item.breast_mask()
    h, w = image.shape
    s = height / h
    width = max(int(round(w * s)), 1)
    panel = _gray_to_bgr(cv2.resize(from_uint16(image), (width, height), interpolation=cv2.INTER_AREA))
    small = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(panel, contours, -1, MAGENTA, 1)

    def draw(box, color, thick):
        x0, y0, x1, y1 = box
        cv2.rectangle(panel, (int(x0 * s), int(y0 * s)), (int(np.ceil(x1 * s)) - 1, int(np.ceil(y1 * s)) - 1), color, thick)

    for box in sample["local_boxes"]:
        draw(box, YELLOW, 1)
    draw(sample["global_boxes"][0], GREEN, 3 if item.is_dbt else 2)
    draw(sample["global_boxes"][1], BLUE, 1 if item.is_dbt else 2)
    kind = f"DBT z={z1} z'={z2}" if item.is_dbt else "FFDM"
    _label(panel, f"{kind} {item.id[:8]}")
    return panel


def render_preview(dataset, keys: list, row_height: int = 192) -> np.ndarray:
    """BGR uint8 image of the grid for ``keys`` (``SampleKey`` or item indices)."""
    if not keys:
        raise ValueError("no sample to preview")
    samples = [dataset[k] for k in keys]
    min_tissue = getattr(dataset, "mask_min_tissue", None)
    small = row_height // 2 - GAP // 2
    rows, sources = [], []
    for sample in samples:
        sources.append(_source_panel(dataset, sample, row_height))
    src_width = max(p.shape[1] for p in sources)
    n_local = len(samples[0]["local_crops"])
    local_cols = (n_local + 1) // 2
    for sample, source in zip(samples, sources):
        parts = [np.pad(source, ((0, 0), (0, src_width - source.shape[1]), (0, 0)))]
        for c in range(2):
            panel = _crop_panel(sample["global_crops"][c], sample["masks"][c], sample["patch_tissue"][c],
                                row_height, min_tissue)
            n_masked = int(sample["masks"][c].sum())
            _label(panel, f"global {c + 1}" + (f"  {n_masked} masked" if n_masked else ""), color=GREEN if c == 0 else BLUE)
            parts.append(panel)
        if n_local:
            grid = np.zeros((row_height, local_cols * (small + GAP), 3), np.uint8)
            for i, crop in enumerate(sample["local_crops"]):
                r, col = divmod(i, local_cols)
                grid[r * (small + GAP) : r * (small + GAP) + small, col * (small + GAP) : col * (small + GAP) + small] = (
                    _crop_panel(crop, None, None, small, None)
                )
            _label(grid, "locals", color=YELLOW)
            parts.append(grid)
        row = parts[0]
        for p in parts[1:]:
            row = np.concatenate([row, np.zeros((row_height, GAP, 3), np.uint8), p], axis=1)
        rows.append(row)
    width = rows[0].shape[1]
    legend = np.zeros((24, width, 3), np.uint8)
    x = 4
    for text, color in (("global 1", GREEN), ("global 2", BLUE), ("locals", YELLOW),
                        ("breast / maskable patches", MAGENTA), ("iBOT-masked patches", RED)):
        _label(legend, text, (x, 16), color, 0.45)
        x += 18 + cv2.getTextSize(text, FONT, 0.45, 1)[0][0]
    out = [legend]
    for row in rows:
        out += [np.zeros((GAP, width, 3), np.uint8), row]
    return np.concatenate(out, axis=0)


def save_preview(dataset, path: str | Path, n: int = 8, seed: int | None = None, step: int = 0,
                 row_height: int = 192) -> Path:
    """Write the grid of ``n`` samples (drawn as batch ``step`` of a run would be) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = render_preview(dataset, preview_keys(dataset, n, seed, step), row_height)

    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{path}: could not write the PNG")

    atomic.atomic_write(path, write, suffix=".tmp.png")
    return path
