"""Fuzz ``mammodino index``: a corpus of hostile files, indexed by the real command in a
subprocess (its peak memory measured over every worker), every manifest row checked.

A corpus folder holds

- ``good/``: unmodified copies of the good seeds (must all be ``ok``);
- ``bad-seeds/``: the seeds that are already bad (must all be skipped with a reason);
- ``mut/<family>/<n>/<seed>.dcm``: one mutant per folder (so mutants of one seed never
  look like the slices of one per-slice DBT series), see :mod:`support.mutate`;
- ``not-dicom/``: empty files, random bytes, text, PNG/ZIP/HTML bytes named ``.dcm``;
- ``special/``: a FIFO, a socket, a folder named ``.dcm``, dangling and self-referencing
  links, links to ``/dev/zero`` and ``/dev/null``, a folder link to its parent (a loop),
  links and hard links to a good file, good files with odd names, a deep path;
- ``series/``: per-slice DBT series, one intact and some with a damaged slice.

Example:
    >>> cases = build_corpus(src, seeds=[(p, True) for p in good] + [(q, False)], n_mutants=500)  # doctest: +SKIP
    >>> result = run_index(src, out, workers=2)                                                     # doctest: +SKIP
    >>> report = check(cases, src, out, result)                                                     # doctest: +SKIP
    >>> assert not report.violations, report.violations[:5]                                         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import warnings
import re
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from support import procs
from support.mutate import FAMILIES, NOT_DICOM, mutate, not_dicom

UNEXPECTED = "unexpected error"


@dataclass
class Case:
    rel: str  # source path relative to the corpus root, as the manifest writes it
    family: str
    expect: str  # ok | skip | either | none (no row: a folder)
    seed: str = ""


@dataclass
class Report:
    cases: int = 0
    rows: int = 0
    ok: int = 0
    skipped: int = 0
    reasons: Counter = field(default_factory=Counter)  # reason class -> count
    unexpected_errors: list = field(default_factory=list)  # (rel, family, reason): the reader's catch-all
    violations: list = field(default_factory=list)  # (category, message): rows|status|files|reason|privacy|escaped
    by_family: dict = field(default_factory=dict)  # family -> Counter(ok/skipped)
    escaped: int = 0  # runs with a non-zero exit or a traceback
    peak_rss_bytes: int | None = None
    seconds: float = 0.0

    def violated(self, *categories: str) -> list[str]:
        """Messages of the broken expectations in ``categories`` (all when none given)."""
        return [m for c, m in self.violations if not categories or c in categories]

    def summary(self) -> dict:
        return {"cases": self.cases, "rows": self.rows, "ok": self.ok, "skipped": self.skipped,
                "reasons": dict(self.reasons.most_common()), "unexpected_errors": len(self.unexpected_errors),
                "violations": dict(Counter(c for c, _ in self.violations)), "escaped": self.escaped,
                "peak_rss_mb": None if self.peak_rss_bytes is None else round(self.peak_rss_bytes / 2**20, 1),
                "seconds": round(self.seconds, 2)}


def reason_class(reason: str) -> str:
    """Reasons that differ only in numbers or quoted details count as one."""
    text = re.sub(r"\(.*\)", "(...)", reason) if reason.startswith(UNEXPECTED) else reason
    return re.sub(r"-?\d[\d,.]*", "#", text) or "(empty)"


def _expect(family_expect: str, seed_good: bool) -> str:
    if family_expect == "keep":
        return "ok" if seed_good else "skip"
    return family_expect


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def patient_strings(paths) -> list[str]:
    """PatientName / PatientID values of DICOM files (and the name's parts), for checking
    that none of them reaches the manifest."""
    import pydicom

    out = set()
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientName", "PatientID"])
        except Exception:  # noqa: BLE001 - not readable: nothing to protect
            continue
        for key in ("PatientName", "PatientID"):
            value = str(ds.get(key) or "").strip()
            if len(value) >= 6:
                out.add(value)
                out.update(part for part in value.split("^") if len(part) >= 6)
    return sorted(out)


def build_corpus(src, seeds: list[tuple[Path, bool]], n_mutants: int = 500, seed: int = 0,
                 families: list[str] | None = None, specials: bool = True, series: bool = True) -> list[Case]:
    """Write the corpus under ``src`` (created); returns one :class:`Case` per expected
    manifest row (plus ``expect="none"`` entries for folders that must give no row).

    ``seeds``: ``(path, is_good)``; every family is applied to every seed once (where it
    applies), then random (family, seed) pairs fill up to ``n_mutants`` mutants.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every invalid value written on purpose
        return _build_corpus(src, seeds, n_mutants, seed, families, specials, series)


def _build_corpus(src, seeds, n_mutants, seed, families, specials, series) -> list[Case]:
    src = Path(src)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    loaded = []
    for path, good in seeds:
        path = Path(path)
        data = path.read_bytes()
        folder = "good" if good else "bad-seeds"
        name = path.name if path.suffix else path.name + ".dcm"
        rel = f"{folder}/{len(loaded):03d}/{name}"
        _write(src / rel, data)
        cases.append(Case(rel, "seed", "ok" if good else "skip", path.name))
        loaded.append((path.name, data, good))

    names = families or sorted(FAMILIES)
    plan = [(f, i) for f in names for i in range(len(loaded))]
    rng.shuffle(plan)
    made = 0
    attempts = 0

    def add(fam: str, i: int) -> bool:
        nonlocal made
        seed_name, data, good = loaded[i]
        m = mutate(seed_name, data, fam, rng)
        if m is None:
            return False
        stem = Path(seed_name).stem
        rel = f"mut/{fam}/{made:04d}/{stem}.dcm"
        _write(src / rel, m.data)
        cases.append(Case(rel, fam, _expect(m.expect, good), seed_name))
        made += 1
        return True

    for fam, i in plan:
        if made >= n_mutants:
            break
        add(fam, i)
    while made < n_mutants and attempts < 50 * n_mutants and loaded:
        attempts += 1
        add(names[int(rng.integers(len(names)))], int(rng.integers(len(loaded))))

    for k, name in enumerate(sorted(NOT_DICOM)):
        m = not_dicom(name, rng)
        rel = f"not-dicom/{k:02d}-{name}.dcm"
        _write(src / rel, m.data)
        cases.append(Case(rel, name, "skip"))

    good = [(n, d) for n, d, g in loaded if g]
    if specials:
        cases += _specials(src, good[0] if good else None)
    if series and good:
        cases += _series(src, rng)
    return cases


def _specials(src: Path, good: tuple[str, bytes] | None) -> list[Case]:
    sp = src / "special"
    sp.mkdir(parents=True, exist_ok=True)
    cases = []
    os.mkfifo(sp / "fifo.dcm")
    cases.append(Case("special/fifo.dcm", "fifo", "skip"))
    sock_path = sp / "socket.dcm"
    if len(os.fsencode(sock_path)) < 100:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(os.fspath(sock_path))
            cases.append(Case("special/socket.dcm", "socket", "skip"))
        except OSError:
            pass
        finally:
            s.close()
    (sp / "folder.dcm").mkdir()
    cases.append(Case("special/folder.dcm", "folder-named-dcm", "none"))
    os.symlink("does-not-exist.dcm", sp / "dangling.dcm")
    cases.append(Case("special/dangling.dcm", "dangling-link", "skip"))
    os.symlink("self.dcm", sp / "self.dcm")
    cases.append(Case("special/self.dcm", "self-link", "skip"))
    for dev in ("zero", "null", "urandom"):
        if os.path.exists(f"/dev/{dev}"):
            os.symlink(f"/dev/{dev}", sp / f"dev-{dev}.dcm")
            cases.append(Case(f"special/dev-{dev}.dcm", f"link-to-/dev/{dev}", "skip"))
    (sp / "loop").mkdir()
    os.symlink("..", sp / "loop" / "up")  # a folder link to its parent: a cycle
    cases.append(Case("special/loop/up", "folder-link-to-parent", "none"))
    if good is not None:
        name, data = good
        _write(sp / "good" / "original.dcm", data)
        cases.append(Case("special/good/original.dcm", "good-copy", "ok"))
        os.symlink("good/original.dcm", sp / "link-to-good.dcm")
        cases.append(Case("special/link-to-good.dcm", "link-to-good", "ok"))
        os.link(sp / "good" / "original.dcm", sp / "hardlink-to-good.dcm")
        cases.append(Case("special/hardlink-to-good.dcm", "hard-link-to-good", "ok"))
        odd = {
            "no-extension/1.2.840.99999.1.2.3": "uid-name",
            "upper/IMAGE.DCM": "upper-case-extension",
            "spaces/name with spaces & ünïcödé.dcm": "unicode-name",
            "/".join(["deep"] * 40) + "/deep.dcm": "deep-path",
        }
        for rel, fam in odd.items():
            _write(sp / rel, data)
            cases.append(Case(f"special/{rel}", fam, "ok"))
    return cases


def _series(src: Path, rng: np.random.Generator) -> list[Case]:
    """Per-slice DBT series written by the project's own writer: one intact, one with a
    truncated slice, one with a slice of another size, one with a non-DICOM file among
    the slices."""
    from pydicom.uid import generate_uid

    from support.dicom_files import BREAST_TOMOSYNTHESIS, write_dbt_series, write_mammo_dicom

    yy, xx = np.mgrid[0:96, 0:72]
    breast = (((yy - 48) / 40.0) ** 2 + (xx / 60.0) ** 2 <= 1).astype(np.float64)
    vol = np.stack([np.rint(breast * (1500 + 300 * np.sin(xx / 5.0 + z)) + rng.integers(0, 50, breast.shape))
                    for z in range(5)]).astype(np.uint16)
    kw = dict(laterality="L", view="CC", window=(1024, 2048))
    cases = []
    write_dbt_series(src / "series" / "intact", vol, **kw)
    cases.append(Case("series/intact", "series-intact", "ok"))
    files = write_dbt_series(src / "series" / "truncated-slice", vol, **kw)
    data = Path(files[2]).read_bytes()
    Path(files[2]).write_bytes(data[: len(data) - 500])
    cases.append(Case("series/truncated-slice", "series-truncated-slice", "skip"))
    uid = generate_uid()
    write_dbt_series(src / "series" / "other-size", vol, series_uid=uid, **kw)
    write_mammo_dicom(src / "series" / "other-size" / "odd-slice.dcm", vol[0, :80, :60].copy(),
                      sop_class=BREAST_TOMOSYNTHESIS, series_uid=uid, image_position=(0.0, 0.0, 99.0), **kw)
    cases.append(Case("series/other-size", "series-mixed-sizes", "skip"))
    write_dbt_series(src / "series" / "with-junk", vol, **kw)
    (src / "series" / "with-junk" / "junk.dcm").write_bytes(b"not a slice\n" * 5)
    cases.append(Case("series/with-junk", "series-intact-plus-junk", "ok"))
    cases.append(Case("series/with-junk/junk.dcm", "series-junk-file", "skip"))
    return cases


def run_index(src, out, workers: int = 2, size: int = 64, timeout: float = 900, extra: list[str] = (),
              fsize: int | None = None, peak_rss: bool = True) -> procs.ProcResult:
    """``mammodino index SRC OUT`` in a subprocess (1 thread per library)."""
    cmd = [sys.executable, "-m", "mammodino", "index", str(src), str(out), "--size", str(size),
           "--workers", str(workers), "--no-progress", *extra]
    return procs.run(cmd, env=procs.quiet_env(), timeout=timeout, fsize=fsize, peak_rss=peak_rss)


def read_rows(out) -> list[dict]:
    """Manifest rows with their sources from the key file, read even when a field is longer
    than the csv module's default limit (131072 characters; see :func:`manifest_readable`)."""
    from mammodino.data.cache import with_sources

    path = Path(out) / "manifest.csv"
    if not path.exists():
        return []
    old = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return with_sources(out, list(csv.DictReader(fh)))
    finally:
        csv.field_size_limit(old)


def manifest_readable(out) -> str | None:
    """None when the project's own reader (``mammodino.data.cache.read_manifest``, plain
    ``csv`` with its default field limit) reads the manifest; else why not."""
    from mammodino.data.cache import read_manifest

    try:
        read_manifest(out, only_ok=False)
    except Exception as exc:  # noqa: BLE001 - the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def check_cached_files(out, row: dict) -> str | None:
    """Why an ok row's files are unusable, or None when they load with the right shape."""
    out = Path(out)
    try:
        image = np.load(out / row["image_file"], allow_pickle=False)
        mask = np.load(out / row["mask_file"], allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return f"cached files do not load ({type(exc).__name__}: {exc})"
    h, w = int(row["cache_height"]), int(row["cache_width"])
    if image.dtype != np.uint16 or mask.dtype != np.uint8:
        return f"dtypes {image.dtype}/{mask.dtype}, expected uint16/uint8"
    if image.shape[-2:] != (h, w) or mask.shape != (h, w):
        return f"shapes {image.shape}/{mask.shape}, manifest says {h} x {w}"
    slices = int(row.get("slices") or 1)
    if (image.ndim == 3 and image.shape[0] != slices) or (image.ndim == 2 and slices != 1):
        return f"{image.shape} for {slices} slice(s)"
    return None


MAX_REASON = 300


def check(cases: list[Case], out, result: procs.ProcResult | None = None, sensitive: list[str] = ()) -> Report:
    """Compare the manifest of ``out`` with what every case expects. ``sensitive``: strings
    (patient names and ids of the seeds) that must appear nowhere in the manifest."""
    rows = read_rows(out)
    manifest_text = (Path(out) / "manifest.csv").read_text(encoding="utf-8", errors="replace") if rows else ""
    report = Report(cases=sum(1 for c in cases if c.expect != "none"), rows=len(rows))
    unreadable = manifest_readable(out) if rows else None
    if unreadable:
        report.violations.append(("reason", f"manifest.csv no longer opens with read_manifest: {unreadable}"))
    if result is not None:
        report.seconds = result.seconds
        report.peak_rss_bytes = result.peak_rss_bytes
        if result.returncode != 0 or "Traceback" in result.output:
            report.escaped += 1
            report.violations.append(("escaped", f"index exited {result.returncode}: {result.output[-1500:]}"))
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    known = set()
    for case in cases:
        if case.expect == "none":
            hits = [s for s in by_source if s == case.rel or s.startswith(case.rel + "/")]
            if hits:
                report.violations.append(("rows", f"{case.rel} ({case.family}): expected no row, got {hits[:3]}"))
            continue
        known.add(case.rel)
        got = by_source.get(case.rel, [])
        if len(got) != 1:
            report.violations.append(("rows", f"{case.rel} ({case.family}): {len(got)} manifest rows, expected 1"))
            if not got:
                continue
        row = got[0]
        status, reason = row.get("status", ""), row.get("reason", "")
        report.by_family.setdefault(case.family, Counter())[status] += 1
        if status == "ok":
            report.ok += 1
            problem = check_cached_files(out, row)
            if problem:
                report.violations.append(("files", f"{case.rel} ({case.family}): ok but {problem}"))
            if case.expect == "skip":
                report.violations.append(("status", f"{case.rel} ({case.family}): expected skipped, got ok"))
        elif status == "skipped":
            report.skipped += 1
            report.reasons[reason_class(reason)] += 1
            if not reason.strip():
                report.violations.append(("reason", f"{case.rel} ({case.family}): skipped without a reason"))
            if len(reason) > MAX_REASON or any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in reason):
                report.violations.append(("reason", f"{case.rel} ({case.family}): reason of {len(reason)} characters "
                                                    f"with raw header bytes: {reason[:80]!r}..."))
            if reason.startswith(UNEXPECTED):
                report.unexpected_errors.append((case.rel, case.family, reason))
            if case.expect == "ok":
                report.violations.append(("status", f"{case.rel} ({case.family}): expected ok, skipped: {reason[:200]}"))
        else:
            report.violations.append(("status", f"{case.rel} ({case.family}): status {status!r}"))
    for text in sensitive:
        if text and text in manifest_text:
            where = [r["source"] for r in rows if any(text in str(v) for v in r.values())]
            report.violations.append(("privacy", f"patient data {text!r} copied into the manifest (rows {where[:3]})"))
    extra = sorted(set(by_source) - known)
    if extra:
        report.violations.append(("rows", f"{len(extra)} rows for sources that are no case: {extra[:5]}"))
    return report


def table(report: Report, top: int = 40) -> str:
    """Plain-text counts by reason and by family."""
    lines = [f"cases {report.cases}, rows {report.rows}, ok {report.ok}, skipped {report.skipped}, "
             f"unexpected-error rows {len(report.unexpected_errors)}, violations {len(report.violations)}, "
             f"escaped {report.escaped}, peak RSS "
             + ("n/a" if report.peak_rss_bytes is None else f"{report.peak_rss_bytes / 2**20:.0f} MiB")
             + f", {report.seconds:.1f} s"]
    lines.append("skipped by reason:")
    lines += [f"  {n:5d}  {reason}" for reason, n in report.reasons.most_common(top)]
    lines.append("by family (ok/skipped):")
    for fam in sorted(report.by_family):
        c = report.by_family[fam]
        lines.append(f"  {fam:28s} {c.get('ok', 0):4d} / {c.get('skipped', 0):4d}")
    return "\n".join(lines)
