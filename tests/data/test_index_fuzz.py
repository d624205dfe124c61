"""Fuzz `mammodino index` with 500+ hostile files: every run finishes, every good file is
ok, every bad file is one skipped row with a reason, memory stays bounded, SRC untouched.

Seeds: small phantoms (good, carrying the fake patient DOE^JANE / MRN-4242-...), film
phantoms (Secondary Capture, RLE and uncompressed, view only in PatientID), the OpenREM
fixtures (bad already) and, when the RSNA files are there, two of them cut to their header
plus 4 kB of JPEG 2000 data (so their mutants fail fast, no 1 s decodes). Mutations:
support.mutate; the corpus also holds non-DICOM bytes named .dcm, a FIFO, a
socket, links to /dev/zero, dangling and looping links, odd names and per-slice DBT series
(support.index_fuzz). The index runs as the real CLI with --workers 2 in a
subprocess whose whole process tree's peak RSS is measured. benchmarks/faults.py runs
the same at a larger scale with full RSNA files.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from support import index_fuzz as fuzz
from support.mutate import header_only
from support.scan import tree_digest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data"))
N_MUTANTS = 520
PATIENT = ["DOE^JANE", "MRN-4242"]
MAX_RSS = 1 << 30  # a 65535 x 65535 x 10^6 header must not cost more than a real mammogram


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    from mammodino.synth.generate import generate_phantoms

    root = tmp_path_factory.mktemp("fuzz")
    phantoms = root / "seeds" / "phantoms"
    generate_phantoms(phantoms, n_ffdm=4, n_dbt=1, seed=3, ffdm_shape=(160, 128), dbt_shape=(6, 96, 80),
                      patient_name="DOE^JANE", patient_id_prefix="MRN-4242-")
    films = root / "seeds" / "films"  # CBIS-style Secondary Capture films, RLE and uncompressed
    generate_phantoms(films, n_ffdm=4, n_dbt=0, seed=3, ffdm_shape=(200, 128), patient_name="DOE^JANE", film=True)
    seeds = [(p, True) for p in sorted(phantoms.rglob("*.dcm"))] + [(p, "rois" not in p.parts) for p in sorted(films.rglob("*.dcm"))]
    fixtures = SHARED_DATA / "dicom_headers"
    if fixtures.is_dir():
        seeds += [(p, False) for p in sorted(fixtures.glob("*.dcm"))]
    rsna = sorted((SHARED_DATA / "rsna").rglob("*.dcm"), key=lambda p: p.stat().st_size)[:2] \
        if (SHARED_DATA / "rsna").is_dir() else []
    for p in rsna:  # header + 4 kB of the JPEG 2000 stream: the header checks, no slow decode
        q = root / "seeds" / "rsna" / f"hdr-{p.name}"
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(header_only(p.read_bytes()))
        seeds.append((q, False))
    src, out = root / "src", root / "out"
    cases = fuzz.build_corpus(src, seeds, n_mutants=N_MUTANTS, seed=0)
    before = tree_digest(src)
    result = fuzz.run_index(src, out, workers=2, size=64)
    sensitive = fuzz.patient_strings([p for p, _ in seeds]) + PATIENT
    report = fuzz.check(cases, out, result, sensitive=sensitive)
    print(fuzz.table(report))
    return types.SimpleNamespace(root=root, src=src, out=out, cases=cases, result=result, report=report,
                                 before=before, rsna=rsna, seeds=seeds)


def test_the_corpus_is_large_and_varied(fuzzed):
    assert fuzzed.report.cases >= 500
    families = {c.family for c in fuzzed.cases}
    for family in ("truncate-header", "truncate-pixels", "flip-header", "ts-jpeg2000", "ts-unknown", "huge-dims",
                   "zero-frames", "empty", "random-bytes", "fifo", "dangling-link", "folder-link-to-parent",
                   "link-to-/dev/zero", "series-truncated-slice"):
        assert family in families, family
    assert fuzzed.report.ok >= 20 and fuzzed.report.skipped >= 400


def test_every_run_finishes_and_no_exception_escapes(fuzzed):
    r = fuzzed.result
    assert not r.timed_out and r.returncode == 0, r.output[-3000:]
    assert "Traceback" not in r.output
    assert "skipped by reason" in r.stdout  # the CLI's own summary was printed


def test_every_good_file_is_ok_and_every_bad_file_one_skipped_row(fuzzed):
    problems = fuzzed.report.violated("rows", "status")
    assert problems == [], "\n".join(problems[:30])
    good = [c for c in fuzzed.cases if c.expect == "ok"]
    assert len(good) >= 15  # seeds, odd names, links, hard link, series, harmless mutations


def test_every_skip_has_a_reason(fuzzed):
    rows = fuzz.read_rows(fuzzed.out)
    assert all(r["reason"].strip() for r in rows if r["status"] == "skipped")
    assert all(r["reason"] == "" for r in rows if r["status"] == "ok")


def test_every_ok_row_has_loadable_cache_files(fuzzed):
    problems = fuzzed.report.violated("files")
    assert problems == [], "\n".join(problems[:30])
    assert not list(fuzzed.out.rglob("*.tmp-*"))  # no temporary file survived


def test_absurd_dimensions_are_refused_from_the_header_and_memory_stays_bounded(fuzzed):
    rows = {r["source"]: r for r in fuzz.read_rows(fuzzed.out)}
    huge = [c for c in fuzzed.cases if c.family in ("huge-dims", "huge-frames")]
    assert huge
    for case in huge:
        row = rows[case.rel]
        assert row["status"] == "skipped" and (
            "too large" in row["reason"] or "no pixel data" in row["reason"] or "structured report" in row["reason"]
            or "FOR PROCESSING" in row["reason"]), row
    assert any("too large" in rows[c.rel]["reason"] for c in huge)
    # the whole tree: the CLI process, the forkserver and both workers
    assert fuzzed.result.peak_rss_bytes is not None and 0 < fuzzed.result.peak_rss_bytes < MAX_RSS


def test_nothing_under_src_is_modified(fuzzed):
    assert tree_digest(fuzzed.src) == fuzzed.before


def test_skip_reasons_are_short_and_never_quote_patient_data(fuzzed):
    """A damaged length in the file meta makes MediaStorageSOPClassUID swallow the header;
    a reason that quotes the SOP class verbatim then copies PatientName/PatientID (and
    ~100 kB of binary) into manifest.csv (family meta-uid-swallows-header)."""
    problems = fuzzed.report.violated("reason", "privacy")
    assert problems == [], "\n".join(p[:300] for p in problems[:12])


def test_the_readers_catch_all_is_never_needed(fuzzed):
    """'unexpected error (...)' rows are exceptions the readers did not turn into a
    SkipFile with a proper reason (the indexer's safety net caught them)."""
    assert fuzzed.report.unexpected_errors == [], fuzzed.report.unexpected_errors[:10]


def test_a_second_run_adds_no_row(fuzzed):
    """Resuming over the same folder: everything is already done, the manifest unchanged.
    (FIFOs, sockets and broken links are reported by the walker without the 'already
    done' check, so each re-run appended them again.)"""
    before = (fuzzed.out / "manifest.csv").read_bytes()
    result = fuzz.run_index(fuzzed.src, fuzzed.out, workers=2, size=64, peak_rss=False)
    assert result.returncode == 0, result.output[-2000:]
    after = (fuzzed.out / "manifest.csv").read_bytes()
    sources = [r["source"] for r in fuzz.read_rows(fuzzed.out)]
    duplicated = sorted({s for s in sources if sources.count(s) > 1})
    assert duplicated == [] and after == before, duplicated


def test_rsna_header_mutants(fuzzed):
    if not fuzzed.rsna:
        pytest.skip(f"RSNA DICOMs not found under {SHARED_DATA / 'rsna'}")
    rsna_cases = [c for c in fuzzed.cases if c.seed.startswith("hdr-")]
    assert len(rsna_cases) >= 40
    rows = {r["source"]: r for r in fuzz.read_rows(fuzzed.out)}
    for case in rsna_cases:  # the JPEG 2000 stream is cut: never ok, always a reason
        assert rows[case.rel]["status"] == "skipped" and rows[case.rel]["reason"], case
