"""Join a task's label rows to the embedded images, and say what did not join.

Label tables and image archives never match perfectly (a table covers more images than
were downloaded, an archive holds images no table labels). Both directions are counted and
reported ("412 label rows have no image in the features; 3 features have no label");
nothing is dropped silently.

How a label row finds its images (see :mod:`mammodino.eval.tasks.base` for the kinds):

* ``stem``: features whose ``stem`` equals the key;
* ``prefix``: features whose stem is the key or starts with ``key_``;
* ``path``: the longest trailing part of the path (two or more components) that ends a
  manifest ``source`` path; else the path's first folder, when exactly one source path has
  a component of that name (CBIS-DDSM's ``Mass-Training_P_00001_LEFT_CC``); else the file
  stem, when it is unique among the features and among the label paths;
* ``patient``: features whose ``patient_key`` is the salted hash of the key (the cache's
  own salt, read in memory) or whose source path has a folder named like the key, and whose
  laterality is the row's.

``path`` and ``patient`` need the cache folder (recorded in the features file) and its
private key file beside it (:mod:`mammodino.privacy`) for the source paths, file stems and
salt; ``stem`` and ``prefix`` use the key file's stems when it is at hand (the manifest's
``stem`` is the pseudonymous id). The raw values stay in memory.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mammodino.data.cache import read_manifest
from mammodino.eval.features import FeatureSet
from mammodino.eval.splits import normalise_split
from mammodino.eval.tasks.base import TaskLabels
from mammodino.io.labels import STEM_SUFFIXES
from mammodino.privacy import load_key_for_cache, pseudonym


@dataclass
class JoinedTask:
    """The labelled subset of a feature set, row-aligned."""

    task: str
    classes: list[str]
    index: np.ndarray  # rows of the FeatureSet
    y: np.ndarray  # int class index
    groups: np.ndarray  # patient of each row (in memory only; never written)
    breast: np.ndarray  # patient + laterality (image id when the side is unknown)
    split: np.ndarray  # "train" / "test" / ""
    n_label_rows: int = 0
    n_label_rows_unmatched: int = 0
    n_features_unlabelled: int = 0
    n_conflicts: int = 0
    n_no_label: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> str:
        return (
            f"{self.task}: {len(self)} labelled images from {len(set(self.groups))} patients; "
            f"{self.n_label_rows_unmatched} label rows have no image in the features; "
            f"{self.n_features_unlabelled} features have no label"
        )


def _strip_ext(p: str) -> str:
    p = p.replace("\\", "/").strip().lstrip("./")
    path = PurePosixPath(p)
    name = path.name
    for ext in (".nii.gz", *sorted(STEM_SUFFIXES)):  # the stems label tables use (labels.stem_of)
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return str(path.with_name(name)) if name else str(path)


def _parts(p: str) -> list[str]:
    return [x for x in _strip_ext(p).split("/") if x and x not in (".", "..")]


class _CacheInfo:
    """Source paths and the salt of the cache, read lazily (in memory only)."""

    def __init__(self, cache_dir: str | Path | None):
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._sources = None
        self._key = False  # not read yet

    def available(self) -> bool:
        return bool(self.cache_dir) and (self.cache_dir / "manifest.csv").exists()

    def sources(self) -> dict[str, str]:
        """id -> source path; empty when the cache is not at hand (matching then falls back
        to file stems, with a note)."""
        if self._sources is None:
            self._sources = {}
            if self.available():
                self._sources = {r["id"]: r.get("source", "")
                                 for r in read_manifest(self.cache_dir, only_ok=False, check_files=False)}
            key = self.key()
            if key is not None:
                self._sources.update({i: src for i, (src, _) in key.entries.items() if src})
        return self._sources

    def key(self):
        if self._key is False:
            self._key = load_key_for_cache(self.cache_dir) if self.cache_dir else None
        return self._key

    def stems(self) -> dict[str, str]:
        """id -> file stem from the key file (empty when it is not at hand)."""
        key = self.key()
        return {i: stem for i, (_, stem) in key.entries.items() if stem} if key is not None else {}

    def salt(self) -> str | None:
        key = self.key()
        return key.salt if key is not None else None


def _candidates(fs: FeatureSet, slice_level: bool) -> np.ndarray:
    """Rows a label may attach to: every DBT slice for slice-level tasks, else the
    image-level rows (DBT: middle slice)."""
    if slice_level:
        return np.flatnonzero((fs.kind == "dbt") & (fs.slice >= 0))
    return np.flatnonzero(fs.image_level_mask())


class _Matcher:
    """The candidate rows indexed by every key a label row can name, built once per join so
    that matching a row is a few dict look-ups."""

    def __init__(self, fs: FeatureSet, labels: TaskLabels, candidates: np.ndarray, cache: _CacheInfo,
                 notes: list[str]):
        self.fs = fs
        self._index_stems(candidates, cache)
        kinds = {r.key_kind for r in labels.rows}
        self.by_suffix: dict[str, list[int]] = defaultdict(list)
        self.by_component: dict[str, set[int]] = defaultdict(set)
        if kinds & {"path", "patient"}:
            self._index_sources(candidates, cache, notes)
        self.label_stem_counts = _label_stem_counts(labels)
        self.by_patient: dict[str, list[int]] = defaultdict(list)
        self.salt = cache.salt() if "patient" in kinds else None
        if "patient" in kinds:
            for i in candidates:
                self.by_patient[fs.patient_key[i]].append(i)
            if self.salt is None:
                notes.append("the key file of the cache is not at hand: patients matched by folder name only")

    def _index_stems(self, candidates: np.ndarray, cache: _CacheInfo) -> None:
        """``stem``/``prefix`` keys name the real file stem (from the key file when at hand)."""
        self.by_stem: dict[str, list[int]] = defaultdict(list)
        self.by_prefix: dict[str, list[int]] = defaultdict(list)
        real_stems = cache.stems()
        self.stem_of = {i: real_stems.get(self.fs.id[i], self.fs.stem[i]) for i in candidates}
        for i in candidates:
            s = self.stem_of[i]
            self.by_stem[s].append(i)
            self.by_prefix[s.split("_")[0]].append(i)

    def _index_sources(self, candidates: np.ndarray, cache: _CacheInfo, notes: list[str]) -> None:
        """``path``/``patient`` keys name trailing parts or folders of the source path."""
        if not cache.available():
            notes.append(
                f"the cache the features came from ({cache.cache_dir or 'not recorded'}) is not at hand: "
                "paths are matched by file stem only and patients not at all (pass --cache)"
            )
        sources = cache.sources()
        for i in candidates:
            parts = _parts(sources.get(self.fs.id[i], ""))
            for k in range(1, len(parts) + 1):
                self.by_suffix["/".join(parts[-k:])].append(i)
            for comp in parts:
                self.by_component[comp].add(i)

    def match(self, r) -> list[int]:
        """Rows label row ``r`` names (see the module docstring for each key kind)."""
        if r.key_kind == "stem":
            return self.by_stem.get(r.key, [])
        if r.key_kind == "prefix":
            return [i for i in self.by_prefix.get(r.key, [])
                    if self.stem_of[i] == r.key or self.stem_of[i].startswith(r.key + "_")]
        if r.key_kind == "path":
            return self._match_path(r.key)
        if r.key_kind == "patient":
            return self._match_patient(r)
        raise ValueError(f"unknown key kind {r.key_kind!r}")

    def _match_path(self, key: str) -> list[int]:
        parts = _parts(key)
        for k in range(len(parts), 1, -1):
            hit = self.by_suffix.get("/".join(parts[-k:]))
            if hit:
                return hit
        if parts:
            comp_hit = self.by_component.get(parts[0], set())
            if len(comp_hit) == 1:
                return list(comp_hit)
            stem_hit = self.by_stem.get(parts[-1], [])
            if len(stem_hit) == 1 and self.label_stem_counts[parts[-1]] == 1:
                return stem_hit
        return []

    def _match_patient(self, r) -> list[int]:
        hits = set(self.by_patient.get(pseudonym(r.key, self.salt), [])) if self.salt else set()
        hits |= self.by_component.get(r.key, set())
        return sorted(i for i in hits if not r.laterality or self.fs.laterality[i] == r.laterality)


def _label_stem_counts(labels: TaskLabels) -> dict[str, int]:
    """How many ``path`` label rows end in each file stem: a stem match must be unique on both sides."""
    counts: dict[str, int] = defaultdict(int)
    for r in labels.rows:
        if r.key_kind == "path":
            p = _parts(r.key)
            if p:
                counts[p[-1]] += 1
    return counts


def _assign(fs: FeatureSet, labels: TaskLabels, matcher: _Matcher, cand_set: set):
    """Label of each matched row and the label row it came from; rows named by conflicting
    label rows keep the higher class. Returns ``(label_of, row_of, unmatched, conflicts)``."""
    label_of: dict[int, int] = {}
    row_of: dict[int, object] = {}
    unmatched = conflicts = 0
    for r in labels.rows:
        hits = [i for i in matcher.match(r) if i in cand_set]
        if not hits:
            unmatched += 1
            continue
        for i in hits:
            if labels.slice_level:
                lab = int(r.label and r.slice_range is not None and r.slice_range[0] <= fs.slice[i] <= r.slice_range[1])
            else:
                lab = r.label
            if i in label_of and label_of[i] != lab:
                conflicts += 1
                lab = max(lab, label_of[i])
            label_of[i] = lab
            row_of[i] = r
    return label_of, row_of, unmatched, conflicts


def _groups(fs: FeatureSet, index: np.ndarray, row_of: dict):
    """Patient (table's, else the cache's pseudonym, else the image), breast and split of each row."""
    groups, breast, split = [], [], []
    for i in index:
        r = row_of[i]
        if r.patient:
            g = "t:" + r.patient
        elif fs.patient_key[i]:
            g = "k:" + fs.patient_key[i]
        else:
            g = "i:" + fs.id[i]
        groups.append(g)
        lat = fs.laterality[i] or r.laterality
        breast.append(f"{g}|{lat}" if lat else f"{g}|img:{fs.id[i]}")
        split.append(normalise_split(r.split))
    return groups, breast, np.array(split, dtype=object)


def join_labels(fs: FeatureSet, labels: TaskLabels, cache_dir: str | Path | None = None) -> JoinedTask:
    """Attach ``labels`` to the rows of ``fs``. Image-level tasks use the image-level rows
    (DBT: middle slice); slice-level tasks use every DBT slice row."""
    cache = _CacheInfo(cache_dir or fs.cache)
    candidates = _candidates(fs, labels.slice_level)
    notes = list(labels.notes)
    matcher = _Matcher(fs, labels, candidates, cache, notes)
    label_of, row_of, unmatched, conflicts = _assign(fs, labels, matcher, set(candidates.tolist()))
    index = np.array(sorted(label_of), dtype=np.int64)
    y = np.array([label_of[i] for i in index], dtype=np.int64)
    groups, breast, split = _groups(fs, index, row_of)
    if len(split) and (split != "").any() and (split == "").any():
        notes.append(f"{int((split == '').sum())} rows have no split value: the table's split column is ignored")
        split[:] = ""
    if labels.slice_level and len(index) and (fs.slice[candidates] == fs.n_slices[candidates] // 2).all():
        notes.append("only middle slices were embedded: run `mammodino embed --dbt-slices all` for slice-level tasks")
    if conflicts:
        notes.append(f"{conflicts} images got different labels from different rows (the higher class was kept)")
    return JoinedTask(
        task=labels.task,
        classes=list(labels.classes),
        index=index,
        y=y,
        groups=np.array(groups, dtype=object),
        breast=np.array(breast, dtype=object),
        split=split.astype(str) if len(split) else np.array([], dtype=str),
        n_label_rows=len(labels.rows),
        n_label_rows_unmatched=unmatched,
        n_features_unlabelled=len(candidates) - len(index),
        n_conflicts=conflicts,
        n_no_label=labels.n_no_label,
        notes=notes,
    )


def compact_classes(joined: JoinedTask) -> JoinedTask:
    """Drop classes no joined image carries (re-indexing ``y``), noting which."""
    present = sorted(set(joined.y.tolist()))
    if len(present) == len(joined.classes):
        return joined
    dropped = [c for i, c in enumerate(joined.classes) if i not in present]
    remap = {old: new for new, old in enumerate(present)}
    joined.y = np.array([remap[v] for v in joined.y], dtype=np.int64)
    joined.classes = [joined.classes[i] for i in present]
    joined.notes.append(f"classes with no labelled image were dropped: {', '.join(dropped)}")
    return joined
