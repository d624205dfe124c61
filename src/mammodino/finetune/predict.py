"""``mammodino predict``: a fine-tuned model's scores for new mammograms, as one CSV.

SRC is either an indexed cache or a folder of raw DICOM / PNG / TIFF / NPY files. A raw
folder goes through :func:`mammodino.data.indexer.index_folder` -- the very reading,
windowing, segmentation, orientation and crop of ``mammodino index``, in parallel, with its
progress bar and its per-file reasons -- into a cache at the long side the model was trained
on (a temporary folder, or ``cache_dir`` to keep it: a re-run then decodes nothing). The
images are then fed exactly as in fine-tuning evaluation (:class:`FineTuneDataset`, whole
image, embed geometry), in batches, with bf16 autocast on GPU.

CSV rows (``level`` column):

* ``image``: one per source file: ``id`` (salted hash of the path), ``patient_key`` /
  ``study_key`` (salted hashes), laterality, view, kind, ``status`` ok / skipped, ``reason``
  for a file that could not be read (never a crash), and ``p_<class>`` per class;
* ``breast``: one per patient + side: the mean over its views (as ``probe``'s breast level);
* ``exam``: one per study (patient when there is no study id): for binary and multi-label
  models the highest breast probability (a finding in one breast makes the exam positive),
  for multi-class models the mean over the breasts (``exam_score`` max / mean overrides).

No raw patient id, name or path is written; ``keep_source=True`` adds the ``source`` column
(the path under SRC, which in many archives names the patient).
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mammodino import atomic
from mammodino.data.cache import MANIFEST_NAME, open_cache, read_manifest, with_sources
from mammodino.errors import UserError
from mammodino.finetune import evaluate as ev
from mammodino.finetune.data import FineTuneDataset, eval_loader
from mammodino.finetune.model import load_finetuned

KEY_COLUMNS = ["level", "id", "patient_key", "study_key", "laterality", "view", "kind", "n_images", "status", "reason"]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def class_columns(classes: list[str]) -> list[str]:
    """``p_<class>`` column names (lower case, non-alphanumerics as ``_``, made unique)."""
    out = []
    for c in classes:
        name = "p_" + (re.sub(r"[^0-9a-zA-Z]+", "_", str(c)).strip("_").lower() or "class")
        while name in out:
            name += "_"
        out.append(name)
    return out


class _Unlabelled:
    """The part of a LabelledSet that :class:`FineTuneDataset` reads in evaluation."""

    def __init__(self, images):
        self.images = images
        self.slices = np.array([im.n_slices // 2 if im.is_dbt else -1 for im in images], dtype=np.int64)
        self.y = np.zeros(len(images), dtype=np.int64)

    def __len__(self):
        return len(self.images)


def score_cache(model, config: dict, cache_dir, batch_size: int = 64, device="cpu", precision: str = "auto",
                workers: int = 0, progress: bool = False) -> tuple[list, np.ndarray]:
    """(ok cached images, calibrated probabilities (n, n_outputs)) of every ok image of a cache."""
    images = open_cache(cache_dir)
    data = FineTuneDataset(_Unlabelled(images), int(config["preprocessing"]["input_size"]), model.patch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), desc="predict", unit="img", dynamic_ncols=True, file=sys.stderr)
    try:
        logits = ev.batched_logits(model, eval_loader(data, range(len(images)), batch_size, workers),
                                   torch.device(device), precision, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return images, ev.probabilities_from_logits(model, logits)


def _aggregate(keys: list[str], probs: np.ndarray, how: str) -> tuple[list[str], np.ndarray, list[int]]:
    order = sorted(set(keys))
    pos = {k: i for i, k in enumerate(order)}
    idx = np.array([pos[k] for k in keys], dtype=np.int64)
    counts = np.bincount(idx, minlength=len(order))
    if how == "max":
        out = np.full((len(order), probs.shape[1]), -np.inf)
        np.maximum.at(out, idx, probs)
    else:
        out = np.zeros((len(order), probs.shape[1]))
        np.add.at(out, idx, probs)
        out /= counts[:, None]
    return order, out, counts.tolist()


def prediction_rows(images, probs: np.ndarray, classes: list[str], multilabel: bool, skipped=(),
                    keep_source: bool = False, exam_score: str = "auto") -> tuple[list[str], list[dict]]:
    """(CSV header, rows): image rows (ok and skipped), then breast and exam rows.

    ``exam_score``: ``max`` (the most suspicious breast), ``mean`` (of the breasts) or
    ``auto`` (max for binary and multi-label models, mean for multi-class)."""
    if exam_score not in ("auto", "max", "mean"):
        raise UserError(f"--exam-score {exam_score!r}: choose auto, max or mean")
    cols = class_columns(classes)
    header = KEY_COLUMNS + (["source"] if keep_source else []) + cols
    rows = []

    def probs_of(p):
        return {c: f"{float(v):.6f}" for c, v in zip(cols, p)}

    breast_keys, exam_of_breast = [], {}
    for im, p in zip(images, probs):
        r = im.row
        row = {"level": "image", "id": r["id"], "patient_key": r.get("patient_key", ""), "study_key": r.get("study_key", ""),
               "laterality": r.get("laterality", ""), "view": r.get("view", ""), "kind": r.get("kind", ""),
               "n_images": 1, "status": "ok", "reason": "", **probs_of(p)}
        if keep_source:
            row["source"] = r.get("source", "")
        rows.append(row)
        person = r.get("patient_key") or f"image:{r['id']}"
        bk = f"{person}|{r.get('laterality') or 'image:' + r['id']}"
        breast_keys.append(bk)
        exam_of_breast[bk] = (r.get("study_key") or person, person, r.get("study_key", ""))
    for r in skipped:
        row = {"level": "image", "id": r.get("id", ""), "patient_key": r.get("patient_key", ""),
               "study_key": r.get("study_key", ""), "laterality": r.get("laterality", ""), "view": r.get("view", ""),
               "kind": r.get("kind", ""), "n_images": 1, "status": "skipped", "reason": r.get("reason", "")}
        if keep_source:
            row["source"] = r.get("source", "")
        rows.append(row)
    if len(images):
        bkeys, bprobs, bcounts = _aggregate(breast_keys, probs, "mean")
        for k, p, n in zip(bkeys, bprobs, bcounts):
            person, side = k.split("|", 1)
            rows.append({"level": "breast", "patient_key": "" if person.startswith("image:") else person,
                         "study_key": exam_of_breast[k][2],
                         "laterality": "" if side.startswith("image:") else side, "n_images": n, "status": "ok",
                         **probs_of(p)})
        exam_keys = [exam_of_breast[k][0] for k in bkeys]
        how = exam_score if exam_score != "auto" else ("max" if (multilabel or len(classes) == 2) else "mean")
        ekeys, eprobs, _ = _aggregate(exam_keys, bprobs, how)
        if how == "max" and not multilabel:
            if len(classes) == 2:
                eprobs[:, 0] = 1.0 - eprobs[:, 1]  # the exam's positive probability is its most suspicious breast's
            else:
                eprobs /= eprobs.sum(axis=1, keepdims=True)  # per-class maxima, renormalised
        img_counts = {}
        for k, n in zip(bkeys, bcounts):
            img_counts[exam_of_breast[k][0]] = img_counts.get(exam_of_breast[k][0], 0) + n
        person_of_exam = {exam_of_breast[k][0]: exam_of_breast[k][1:] for k in bkeys}
        for k, p in zip(ekeys, eprobs):
            person, study = person_of_exam[k]
            rows.append({"level": "exam", "patient_key": "" if person.startswith("image:") else person,
                         "study_key": study,
                         "n_images": img_counts[k], "status": "ok", **probs_of(p)})
    return header, rows


def write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic.atomic_write(path, write)


def predict(model_dir, src, out, *, cache_dir=None, workers: int = 1, batch_size: int = 64, device: str = "auto",
            precision: str = "auto", keep_source: bool = False, salt: str | None = None, progress: bool = True,
            exam_score: str = "auto", log=_stderr) -> dict:
    """Score every image of ``src`` (cache or raw folder) with the model of ``model_dir``;
    write ``out`` (CSV). Returns counts and timings."""
    from mammodino.outputs import new_file

    out = new_file(out, "--out")
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder (give a folder of images or an indexed cache)")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model, config = load_finetuned(model_dir, device=device)
    t0 = time.perf_counter()
    tmp = None
    if (src / MANIFEST_NAME).exists():
        cache = src
        decode_s = 0.0
    else:
        from mammodino.data.indexer import index_folder

        if cache_dir is None:
            tmp = tempfile.mkdtemp(prefix="mammodino-predict-")
            cache = Path(tmp) / "cache"
        else:
            cache = Path(cache_dir)
        size = int(config["preprocessing"].get("cache_long_side") or 1024)
        index_folder(src, cache, size=size, workers=workers, salt=salt, progress=progress)
        decode_s = time.perf_counter() - t0
    try:
        all_rows = with_sources(cache, read_manifest(cache, only_ok=False))  # sources from the key file
        skipped = [r for r in all_rows if r.get("status") != "ok"]
        if any(r.get("status") == "ok" for r in all_rows):
            images, probs = score_cache(model, config, cache, batch_size=batch_size, device=device,
                                        precision=precision, workers=min(int(workers), 4) if workers > 1 else 0,
                                        progress=progress)
        else:
            images, probs = [], np.zeros((0, len(config["classes"])))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    header, rows = prediction_rows(images, probs, config["classes"], bool(config.get("multilabel")), skipped,
                                   keep_source, exam_score)
    write_csv(out, header, rows)
    seconds = time.perf_counter() - t0
    summary = {"images": len(images), "skipped": len(skipped), "seconds": round(seconds, 3),
               "decode_index_seconds": round(decode_s, 3),
               "images_per_s": round(len(images) / max(seconds, 1e-9), 3), "out": str(out), "device": str(device)}
    if skipped:
        reasons = {}
        for r in skipped:
            reasons[r.get("reason", "")] = reasons.get(r.get("reason", ""), 0) + 1
        summary["reasons"] = reasons
    return summary
