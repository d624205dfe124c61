"""Frozen-encoder features for the images of a cache (``mammodino embed``).

Input geometry (decided here, the same for ``embed``, ``attention`` and the robustness
check): the cached image (already cropped to the breast, chest wall on the left) is
resized so that its **long side equals the resolution R** (area interpolation when
shrinking), then **padded with 0 to an R x R square**, the image against the left edge
(the chest wall stays at the left border, as in training crops) and centred vertically.
Why a square rather than "pad to a multiple of the patch": every image then has the same
token grid, so a batch is one tensor and features of different images are directly
comparable; the cost is the padded tokens (a mammogram's breast box is about 0.6-0.8 as
wide as it is tall). R is rounded up to a multiple of the patch size. Pixels are then
normalised exactly as in training (:func:`mammodino.models.preprocess.normalize`).

Feature per image: ``[CLS, mean of the patch tokens]`` of the final normalised tokens
(2 x D); with ``last4`` the same pair for each of the last four blocks (8 x D).
Registers are not part of the feature.

DBT: the middle slice stands for the volume (image-level rows); ``dbt_slices="all"`` adds
one row per slice (``slice`` column) for slice-level tasks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from mammodino.data.cache import CachedImage, open_cache
from mammodino.errors import UserError
from mammodino.eval.features import FeatureSet
from mammodino.eval.perturb import Perturbation
from mammodino.models.preprocess import from_uint16, normalize


# ----------------------------------------------------------------------------- inputs
def input_size(resolution: int, patch_size: int) -> int:
    """The square side actually used: ``resolution`` rounded up to a multiple of the patch."""
    return int(math.ceil(resolution / patch_size) * patch_size)


def fit_to_square(img01: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize a [0, 1] (H, W) image so its long side is ``size`` -> (resized, placement).

    ``placement`` = (y0, x0, h, w) of the resized image inside the ``size`` square (left
    edge, centred vertically)."""
    h, w = img01.shape
    scale = size / max(h, w)
    nh, nw = max(1, min(size, int(round(h * scale)))), max(1, min(size, int(round(w * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(img01, dtype=np.float32), (nw, nh), interpolation=interp)
    return resized, ((size - nh) // 2, 0, nh, nw)


def pad_to_square(resized: np.ndarray, size: int, placement) -> np.ndarray:
    y0, x0, h, w = placement
    out = np.zeros((size, size), dtype=np.float32)
    out[y0 : y0 + h, x0 : x0 + w] = resized
    return out


def prepare_input(
    img: np.ndarray, size: int, perturbation: Perturbation | None = None, key: str = ""
) -> np.ndarray:
    """Cache pixels (uint16 or [0, 1] float) -> normalised (size, size) float32 model input."""
    x = from_uint16(img) if img.dtype == np.uint16 else np.asarray(img, dtype=np.float32)
    resized, place = fit_to_square(x, size)
    if perturbation is not None:
        resized = perturbation.apply(resized, key)
    return normalize(pad_to_square(resized, size, place))


# ----------------------------------------------------------------------------- features
def features_from_tokens(model: torch.nn.Module, x: torch.Tensor, last4: bool = False) -> torch.Tensor:
    """(B, 2D) ``[CLS, mean patch]`` -- or (B, 8D) for the last four blocks."""
    if last4:
        layers = model.get_intermediate_layers(x, n=4, return_class_token=True)
        return torch.cat([torch.cat([cls, patches.mean(dim=1)], dim=1) for patches, cls in layers], dim=1)
    out = model.forward_features(x)
    return torch.cat([out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(dim=1)], dim=1)


def _work_items(images: Sequence[CachedImage], dbt_slices: str) -> list[tuple[CachedImage, int, int]]:
    """(image, slice or -1, number of slices) for every row to embed."""
    items = []
    for im in images:
        if not im.is_dbt:
            items.append((im, -1, 1))
            continue
        n = int(im.volume().shape[0])
        if dbt_slices == "all":
            items.extend((im, z, n) for z in range(n))
        else:
            items.append((im, n // 2, n))
    return items


def embed_cache(
    model: torch.nn.Module,
    cache_dir: str | Path,
    resolution: int = 224,
    last4: bool = False,
    batch_size: int = 32,
    dbt_slices: str = "middle",
    perturbation: Perturbation | None = None,
    ids: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    meta: dict | None = None,
) -> FeatureSet:
    """Embed every ok image of ``cache_dir`` (or only ``ids``) with a frozen ``model``."""
    if dbt_slices not in ("middle", "all"):
        raise UserError(f"--dbt-slices {dbt_slices!r}: choose middle or all")
    if resolution < 16:
        raise UserError(f"--resolution {resolution}: too small (try 224, 448 or 518)")
    if batch_size < 1:
        raise UserError(f"--batch {batch_size}: must be at least 1")
    images = open_cache(cache_dir)
    if ids is not None:
        wanted = set(ids)
        images = [im for im in images if im.id in wanted]
    items = _work_items(images, dbt_slices)
    patch = int(getattr(model, "patch_size", 14))
    size = input_size(resolution, patch)
    device = torch.device(device)
    model = model.to(device).eval()
    feats: list[np.ndarray] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="embed", unit="img")
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = np.stack(
                [
                    prepare_input(im.image(None if z < 0 else z), size, perturbation, key=f"{im.id}:{z}")
                    for im, z, _n in chunk
                ]
            )
            x = torch.from_numpy(batch)[:, None].to(device)
            feats.append(features_from_tokens(model, x, last4).float().cpu().numpy())
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    dim = (4 if last4 else 2) * int(getattr(model, "embed_dim", 0) or 0)
    features = np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)
    if not np.isfinite(features).all():
        raise UserError("the encoder produced non-finite features (NaN/inf): the checkpoint may be broken")

    def col(name):
        return np.array([str(im.row.get(name, "") or "") for im, _z, _n in items], dtype=str)

    full_meta = {"resolution": resolution, "input_size": size, "last4": bool(last4), "dbt_slices": dbt_slices,
                 "feature_layout": ("[cls, mean_patch] x last 4 blocks" if last4 else "[cls, mean_patch]"),
                 "perturbation": perturbation.label if perturbation else None,
                 "geometry": "long side = resolution, zero-padded to a square, image at the left edge"}
    full_meta.update(meta or {})
    return FeatureSet(
        features=features.astype(np.float32),
        id=col("id"),
        patient_key=col("patient_key"),
        laterality=col("laterality"),
        view=col("view"),
        kind=col("kind"),
        stem=col("stem"),
        slice=np.array([z for _im, z, _n in items], dtype=np.int64),
        n_slices=np.array([n for _im, _z, n in items], dtype=np.int64),
        cache=str(Path(cache_dir).resolve()),
        meta=full_meta,
    )


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (default: every core this process may use)."""
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover (macOS)
            threads = os.cpu_count() or 1
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    return threads
