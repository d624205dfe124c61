"""Last-layer CLS-to-patch attention maps, overlaid on the mammogram (``mammodino attention``).

For each input image: the CLS token's attention to every patch in the last block, per head
(registers excluded, each head's map renormalised over the patches so registers that soak
up attention do not wash the map out), and the mean over heads. The image goes through the
same geometry as ``embed`` (long side = resolution, zero-padded square, chest wall left);
the maps are cropped back to the image area, upsampled and drawn over it with a colormap,
together with the breast outline (contour of the tissue mask).

Inputs: DICOM files (read, segmented, cropped to the breast and put in canonical
orientation the way ``mammodino index`` does), cached images (``--cache DIR`` + manifest
id or file stem, or a ``.npy`` from a cache's images/ folder, whose mask is used), or any
``.npy`` / PNG / TIFF / JPEG image (through the indexer's image reader: sizes checked from
the header before decoding), or a folder of such files (its readable images, sorted;
files that are not images are counted and skipped, and a folder with none is an error).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from mammodino.data.cache import open_cache
from mammodino.data.prepare import prepare_image
from mammodino.errors import SkipFile, UserError
from mammodino.eval.embedding import fit_to_square, input_size, pad_to_square
from mammodino.io.dicom_reader import read_dicom
from mammodino.io.image_reader import IMAGE_EXTENSIONS, read_image
from mammodino.models.preprocess import from_uint16, normalize
from mammodino.pixels import to_unit_float
from mammodino.privacy import load_key_for_cache
from mammodino.tissue.segmentation import breast_mask

DISPLAY_LONG_SIDE = 1024  # what a DICOM is resized to before embedding (the cache default)
CROP_MARGIN = 0.02  # of the box side: the indexer's default margin


@dataclass
class SourceImage:
    name: str  # output file stem (no folder names: they may carry patient ids)
    image: np.ndarray  # float32 [0, 1], (H, W), chest wall left
    mask: np.ndarray  # uint8 (H, W)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "image"


def _public_name(path: Path) -> str:
    """Output name for a file given by path: archives name files after patients
    (``MRN12345678_DOE_JANE_0.dcm``), so outputs carry a hash of the name instead."""
    import hashlib

    return "file-" + hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _to_unit(img: np.ndarray) -> np.ndarray:
    if img.dtype in (np.uint16, np.uint8):
        return to_unit_float(img)
    img = img.astype(np.float32)
    if img.max() > 1.0 or img.min() < 0.0:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / max(hi - lo, 1e-6)
    return img


def _mask_of(img01: np.ndarray) -> np.ndarray:
    try:
        return breast_mask(img01)
    except SkipFile:
        return np.zeros(img01.shape, dtype=np.uint8)


def prepare_dicom(path: Path, long_side: int = DISPLAY_LONG_SIDE) -> SourceImage:
    """The indexer's own preparation (:func:`mammodino.data.prepare.prepare_image`, default
    margin, long side ``long_side``; DBT: the middle slice), as [0, 1] pixels."""
    try:
        return _prepared_dicom(path, long_side)
    except SkipFile as exc:
        raise UserError(f"{_shown(path)}: {exc.reason}") from exc


def _prepared_dicom(path: Path, long_side: int = DISPLAY_LONG_SIDE) -> SourceImage:
    mi = read_dicom(path, dtype=np.uint16)  # as the indexer reads it
    prep = prepare_image(mi, long_side, CROP_MARGIN, view=mi.meta.get("view") or None, slices="middle")
    return SourceImage(_public_name(path), from_uint16(prep.pixels), prep.mask)


IMAGE_SUFFIXES = set(IMAGE_EXTENSIONS) - {".npy"}  # the image reader's formats (.npy: cache files, above)
MAX_FOLDER_FILES = 10_000  # files looked at in one folder argument


def _read_npy_checked(p: Path) -> np.ndarray:
    """A .npy through the image reader's header checks (dtype, shape, size vs memory), as stored."""
    from mammodino.io.dicom_reader import DEFAULT_MAX_PIXELS
    from mammodino.io.image_reader import _read_npy

    return _read_npy(p, DEFAULT_MAX_PIXELS)


def _from_file(p: Path) -> SourceImage:
    """One image file -> SourceImage; SkipFile (the reason) when it is not a readable image."""
    suffix = p.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy_checked(p)
        arr = arr[arr.shape[0] // 2] if arr.ndim == 3 else arr
        mask_path = p.parent.parent.parent / "masks" / p.parent.name / p.name
        img = _to_unit(arr)
        mask = None
        if mask_path.is_file():
            try:
                mask = _read_npy_checked(mask_path)
            except SkipFile:
                mask = None
            if mask is not None and mask.shape != img.shape:
                mask = None
        mask = _mask_of(img) if mask is None else mask
        return SourceImage(_safe_name(p.stem), img, mask.astype(np.uint8))  # cache files: named by id
    if suffix in IMAGE_SUFFIXES:
        mi = read_image(p, dtype="float32")  # header-checked, grey, bit depth and polarity as index reads them
        img = mi.pixels[mi.pixels.shape[0] // 2] if mi.pixels.ndim == 3 else mi.pixels
        img = np.ascontiguousarray(img, dtype=np.float32)
        return SourceImage(_public_name(p), img, _mask_of(img))
    return _prepared_dicom(p)


def _shown(p: Path) -> str:
    """A path for a message: bytes that are not UTF-8 shown as \\xNN."""
    from mammodino.data.index_walk import name_text

    return name_text(str(p))


def _folder_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files under ``folder`` (recursively, sorted), at most MAX_FOLDER_FILES."""
    from mammodino.data.index_walk import classify

    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if classify(name) == "ignore" or not path.is_file():
                continue
            files.append(path)
            if len(files) > MAX_FOLDER_FILES:
                raise UserError(f"{_shown(folder)}: more than {MAX_FOLDER_FILES:,} files; attention draws a few "
                                "images: name them, or a smaller folder")
    return files


def _from_folder(folder: Path):
    """The folder's readable images one at a time (a folder of many images is never held
    whole in memory)."""
    files = _folder_files(folder)
    n_ok, reasons = 0, {}
    for path in files:
        try:
            image = _from_file(path)
        except SkipFile as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            continue
        n_ok += 1
        yield image
    why = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
    if not n_ok:
        raise UserError(f"{_shown(folder)}: no readable image among its {len(files)} files "
                        f"(DICOM, PNG, TIFF, JPEG or NPY){': ' + why if why else ''}")
    if reasons:
        print(f"{_shown(folder)}: skipped {sum(reasons.values())} of {len(files)} files that are not readable "
              f"images ({why})", file=sys.stderr)


def resolve_inputs(images: list[str], cache: str | Path | None = None) -> list[SourceImage]:
    """Turn command-line IMAGE arguments (files, folders of images, cache ids or stems)
    into prepared images. An unreadable file is a UserError naming it and the reason."""
    return list(iter_inputs(images, cache))


def iter_inputs(images: list[str], cache: str | Path | None = None):
    """:func:`resolve_inputs` one image at a time (what the command uses)."""
    cached = None
    for item in images:
        p = Path(item)
        if p.is_dir():
            yield from _from_folder(p)
            continue
        if p.exists() and not p.is_file():
            raise UserError(f"{_shown(p)}: not a regular file (a FIFO or device?)")
        if p.is_file():
            try:
                image = _from_file(p)
            except SkipFile as exc:
                raise UserError(f"{_shown(p)}: {exc.reason}") from None
            yield image
            continue
        if cache is None:
            raise UserError(f"{_shown(item)}: no such file (to name a cached image by id or stem, pass --cache CACHE)")
        if cached is None:
            cached = open_cache(cache)
            key = load_key_for_cache(cache)  # file stems are only in the private key file
            stems = {i: stem for i, (_, stem) in key.entries.items()} if key is not None else {}
        hits = [c for c in cached if c.id == item or stems.get(c.id, c.row.get("stem")) == item]
        if not hits:
            raise UserError(f"{_shown(item)}: not an id or stem of the cache {cache}")
        for c in hits:
            yield SourceImage(_safe_name(c.id), _to_unit(c.image()), c.breast_mask().astype(np.uint8))


def cls_attention(model: torch.nn.Module, image01: np.ndarray, resolution: int, device="cpu"):
    """(heads, gh, gw) attention of the CLS token to the patches covering the image, each
    head normalised to sum 1 over all patches; plus the (h, w) of the resized image."""
    patch = int(model.patch_size)
    size = input_size(resolution, patch)
    resized, place = fit_to_square(image01, size)
    x = torch.from_numpy(normalize(pad_to_square(resized, size, place)))[None, None].to(device)
    with torch.inference_mode():
        attn = model.get_last_selfattention(x)  # (1, heads, T, T)
    r = int(getattr(model, "num_register_tokens", 0))
    cls = attn[0, :, 0, 1 + r :].float().cpu().numpy()
    g = size // patch
    cls = cls.reshape(cls.shape[0], g, g)
    cls = cls / np.maximum(cls.sum(axis=(1, 2), keepdims=True), 1e-12)
    y0, x0, h, w = place
    gy0, gx0 = y0 // patch, x0 // patch
    gy1, gx1 = -(-(y0 + h) // patch), -(-(x0 + w) // patch)
    return cls[:, gy0:gy1, gx0:gx1], (h, w), place


def _upsample(grid: np.ndarray, place, patch: int, shape: tuple[int, int]) -> np.ndarray:
    """Patch grid (cropped to the image) -> map on the image of ``shape`` (bilinear)."""
    y0, x0, h, w = place
    gh, gw = grid.shape
    big = cv2.resize(grid.astype(np.float32), (gw * patch, gh * patch), interpolation=cv2.INTER_NEAREST)
    oy, ox = y0 - (y0 // patch) * patch, x0 - (x0 // patch) * patch
    big = big[oy : oy + h, ox : ox + w]
    big = cv2.GaussianBlur(big, (0, 0), sigmaX=patch / 2)
    return cv2.resize(big, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _normalise(m: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(m, 1), np.percentile(m, 99.5)
    return np.clip((m - lo) / max(hi - lo, 1e-12), 0, 1)


def overlay(image01: np.ndarray, heat01: np.ndarray | None, mask: np.ndarray | None, alpha: float = 0.5,
            cmap: str = "inferno") -> np.ndarray:
    """RGB uint8: the grayscale image, the heat map blended with ``alpha``, the breast outline."""
    import matplotlib

    gray = np.repeat((np.clip(image01, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    out = gray.astype(np.float32)
    if heat01 is not None:
        colors = (matplotlib.colormaps[cmap](heat01)[..., :3] * 255).astype(np.float32)
        out = (1 - alpha) * out + alpha * colors
    out = out.clip(0, 255).astype(np.uint8)
    if mask is not None and mask.any():
        m = cv2.resize(mask.astype(np.uint8), (image01.shape[1], image01.shape[0]), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        thickness = max(1, int(round(max(image01.shape) / 400)))
        cv2.drawContours(out, contours, -1, (0, 255, 255), thickness)
    return np.ascontiguousarray(out)


def render_attention(model, src: SourceImage, out_dir: Path, resolution: int = 448, alpha: float = 0.5,
                     device="cpu", display_long_side: int = 768) -> tuple[Path, Path, dict]:
    """Write ``<name>_attention.png`` (image | mean-attention overlay) and ``<name>_heads.png``
    (one overlay per head). Returns both paths and a few numbers about the map."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    heads, _hw, place = cls_attention(model, src.image, resolution, device)
    patch = int(model.patch_size)
    scale = min(1.0, display_long_side / max(src.image.shape))
    disp_shape = (max(1, round(src.image.shape[0] * scale)), max(1, round(src.image.shape[1] * scale)))
    disp = cv2.resize(src.image, (disp_shape[1], disp_shape[0]), interpolation=cv2.INTER_AREA)
    mean_map = _normalise(_upsample(heads.mean(axis=0), place, patch, disp_shape))
    out_dir.mkdir(parents=True, exist_ok=True)
    left = overlay(disp, None, src.mask)
    right = overlay(disp, mean_map, src.mask, alpha=alpha)
    sep = np.full((disp.shape[0], 8, 3), 255, np.uint8)
    mean_png = out_dir / f"{src.name}_attention.png"
    cv2.imwrite(str(mean_png), cv2.cvtColor(np.hstack([left, sep, right]), cv2.COLOR_RGB2BGR))

    n = heads.shape[0]
    cols = min(n, 6)
    rows = -(-n // cols)
    aspect = disp.shape[1] / disp.shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.4 * aspect + 0.3, rows * 3.6 + 0.4), dpi=110, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            m = _normalise(_upsample(heads[i], place, patch, disp_shape))
            ax.imshow(overlay(disp, m, src.mask, alpha=alpha))
            ax.set_title(f"head {i}", fontsize=8)
    fig.suptitle(f"{src.name}: last-layer CLS attention per head", fontsize=9)
    fig.tight_layout()
    heads_png = out_dir / f"{src.name}_heads.png"
    fig.savefig(heads_png)
    plt.close(fig)

    # How much of the attention falls on the breast (vs background): a number to report.
    m_small = cv2.resize(src.mask.astype(np.float32), (heads.shape[2], heads.shape[1]), interpolation=cv2.INTER_AREA)
    mean_grid = heads.mean(axis=0)
    tissue_share = float((mean_grid * (m_small > 0.5)).sum() / max(mean_grid.sum(), 1e-12))
    stats = {"image": src.name, "heads": int(n), "grid": list(heads.shape[1:]),
             "attention_on_tissue": tissue_share, "tissue_area_share": float((m_small > 0.5).mean()),
             "mean_map_entropy_bits": float(-(mean_grid / mean_grid.sum() * np.log2(mean_grid / mean_grid.sum() + 1e-12)).sum())}
    return mean_png, heads_png, stats
