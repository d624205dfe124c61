"""Fault-injection benchmark: every reliability scenario of DESIGN.md at a larger scale
than the test suite, with a table of figures.

Scenarios (each timed):

- ``kill``: a cpu-tiny pretraining run (micro config, deterministic, 1 thread, a checkpoint
  every step) SIGKILLed ``--kills`` times (random moments, during start-up and the moment a
  checkpoint write begins), resumed each time; final state compared with an uninterrupted
  run of the same length (the yardstick). Figures: kills survived, kills that hit a
  checkpoint write, max |weight difference|.
- ``fuzz``: ``mammodino index --workers 2`` on ``--mutants`` hostile files made from phantoms,
  the OpenREM fixtures, all RSNA files cut to their header and ``--rsna-full`` whole RSNA
  files (whose mutants may decode: 0.3-1 s each). Figures: cases, ok, skipped by reason,
  rows that needed the reader's catch-all, broken expectations, escaped exceptions, peak
  RSS of the whole process tree; the yardstick is the same command on the unmutated seeds.
- ``config``: every bad config / data folder / output path of
  :mod:`support.config_fuzz` through the CLI: how many give one clear message.
- ``disk``: the cache and a checkpoint written to a "full disk" (RLIMIT_FSIZE: EFBIG) and a
  full disk hitting metrics.jsonl (ENOSPC): exit code, message, ok rows without files,
  partial files left, whether the same command completes the job afterwards.
- ``inputs``: round two -- crafted weight files through every loader, an existing file as
  every writer's output, 25 hostile caches (tests/support/cache_faults.py) through embed and
  pretrain in subprocesses: clear errors, tracebacks, hangs, planted-secret bytes, peak RSS;
  then (tests/support/input_faults.py) hostile label tables, a ~200 MB RSNA-like table
  streamed and loaded and a 1 GB one with a bad value at line 1000 (peak RSS), DICOM headers
  declaring huge Rows/Columns/NumberOfFrames (index, attention), file and folder names that
  are not UTF-8 (index, with planted patient strings), folders of PNG / non-DICOM files
  given to attention.
- ``nan``: NaN / inf injected into training batches (``support.tamper.tampered_batches``, outside ``pretrain``): steps
  skipped, how the run ends, whether the saved state is finite.

Usage:
    python benchmarks/faults.py                         # everything (~5 min on 2 cores)
    python benchmarks/faults.py --only kill,nan         # some scenarios
    python benchmarks/faults.py --kills 8 --steps 20 --mutants 1500 --rsna-full 3 --json faults.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fault tooling lives in tests/support, not in the package
from support.micro import MICRO as BASE_MICRO  # noqa: E402
from support.tamper import tampered_batches  # noqa: E402
SHARED_DATA = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data"))

MICRO = BASE_MICRO


# --------------------------------------------------------------------------- data


def make_phantoms(work: Path) -> tuple[Path, Path]:
    from mammodino.data.indexer import index_folder
    from mammodino.synth.generate import generate_phantoms

    src, cache = work / "phantoms", work / "phantom-cache"
    generate_phantoms(src, n_ffdm=12, n_dbt=2, seed=0)
    index_folder(src, cache, size=256, workers=1, progress=False)
    return src, cache


# --------------------------------------------------------------------------- scenarios


def scenario_kill(work: Path, cache: Path, args) -> dict:
    from support.killer import format_report, kill_resume_campaign

    modes = ["write", "random", "startup", "write", "random", "write", "random", "write", "random", "write"]
    kills = (modes * (args.kills // len(modes) + 1))[: args.kills]
    report = kill_resume_campaign(cache, work / "kill", MICRO + ["train.checkpoint_every=1"], kills=kills,
                                  seed=args.seed, steps=args.steps)
    print(format_report(report), flush=True)
    return {
        "kills": report.get("kills"), "kills_during_checkpoint_write": report.get("kills_during_write"),
        "resumes": report.get("resumes"), "steps": args.steps,
        "max_abs_diff_weights": report.get("max_abs_diff_weights"), "max_abs_diff_all_tensors": report.get("max_abs_diff"),
        "problems": report.get("problems"), "reference_s": report.get("reference_seconds"),
        "killed_run_s": report.get("killed_run_seconds"),
        "passed": not report.get("problems") and report.get("max_abs_diff") == 0.0,
    }


def scenario_fuzz(work: Path, args) -> dict:
    from mammodino.synth.generate import generate_phantoms
    from support import index_fuzz as fuzz
    from support.mutate import header_only

    root = work / "fuzz"
    seeds_dir = root / "seeds"
    small, full = seeds_dir / "small", seeds_dir / "full"
    generate_phantoms(small, n_ffdm=4, n_dbt=1, seed=3, ffdm_shape=(160, 128), dbt_shape=(6, 96, 80),
                      patient_name="DOE^JANE", patient_id_prefix="MRN-4242-")
    generate_phantoms(full, n_ffdm=4, n_dbt=1, seed=4, patient_name="DOE^JANE", patient_id_prefix="MRN-4242-")
    films = seeds_dir / "films"  # CBIS-style Secondary Capture films (RLE and uncompressed)
    generate_phantoms(films, n_ffdm=4, n_dbt=0, seed=5, ffdm_shape=(600, 360), patient_name="DOE^JANE", film=True)
    seeds = [(p, True) for p in sorted(small.rglob("*.dcm"))] + [(p, True) for p in sorted(full.rglob("*.dcm"))[:3]]
    seeds += [(p, "rois" not in p.parts) for p in sorted(films.rglob("*.dcm"))]
    if (SHARED_DATA / "dicom_headers").is_dir():
        seeds += [(p, False) for p in sorted((SHARED_DATA / "dicom_headers").glob("*.dcm"))]
    rsna = sorted((SHARED_DATA / "rsna").rglob("*.dcm"), key=lambda p: p.stat().st_size) \
        if (SHARED_DATA / "rsna").is_dir() else []
    for p in rsna:
        q = seeds_dir / "rsna-header" / f"hdr-{p.name}"
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(header_only(p.read_bytes()))
        seeds.append((q, False))
    seeds += [(p, True) for p in rsna[: args.rsna_full]]

    # yardstick: the unmutated seeds alone
    clean = root / "clean-src"
    for i, (p, _) in enumerate(seeds):
        (clean / f"{i:03d}").mkdir(parents=True, exist_ok=True)
        os.symlink(p, clean / f"{i:03d}" / p.name)
    base = fuzz.run_index(clean, root / "clean-out", workers=2, size=args.size)

    t0 = time.perf_counter()
    cases = fuzz.build_corpus(root / "src", seeds, n_mutants=args.mutants, seed=args.seed)
    build_s = time.perf_counter() - t0
    from support.scan import tree_digest

    before = tree_digest(root / "src")
    result = fuzz.run_index(root / "src", root / "out", workers=2, size=args.size)
    src_unchanged = tree_digest(root / "src") == before
    sensitive = fuzz.patient_strings([p for p, _ in seeds]) + ["DOE^JANE", "MRN-4242"]
    report = fuzz.check(cases, root / "out", result, sensitive=sensitive)
    print(fuzz.table(report, top=60), flush=True)
    for category, message in report.violations[:40]:
        print(f"  [{category}] {message[:300]}")
    for rel, fam, reason in report.unexpected_errors[:20]:
        print(f"  [catch-all] {fam}: {reason[:200]}")
    rsna_full_cases = [c for c in cases if c.seed in {p.name for p in rsna[: args.rsna_full]}]
    rows = {r["source"]: r for r in fuzz.read_rows(root / "out")}
    return {
        "cases": report.cases, "ok": report.ok, "skipped": report.skipped,
        "skipped_by_reason": dict(report.reasons.most_common()),
        "catch_all_rows": len(report.unexpected_errors),
        "catch_all_examples": sorted({f"{f}: {r[:120]}" for _, f, r in report.unexpected_errors})[:10],
        "violations_by_category": dict(__import__("collections").Counter(c for c, _ in report.violations)),
        "violation_examples": [m[:240] for _, m in report.violations[:12]],
        "escaped": report.escaped, "src_unchanged": src_unchanged,
        "peak_rss_mb": None if result.peak_rss_bytes is None else round(result.peak_rss_bytes / 2**20),
        "index_s": round(result.seconds, 1), "corpus_build_s": round(build_s, 1),
        "rsna_derived_cases": sum(1 for c in cases if c.seed.startswith("hdr-")) + len(rsna_full_cases),
        "rsna_full_mutants_ok": sum(1 for c in rsna_full_cases if rows.get(c.rel, {}).get("status") == "ok"),
        "families": len({c.family for c in cases}),
        "yardstick_clean_seeds": {"files": len(seeds), "s": round(base.seconds, 1),
                                  "peak_rss_mb": None if base.peak_rss_bytes is None else round(base.peak_rss_bytes / 2**20),
                                  "exit": base.returncode},
    }


def scenario_config(work: Path, cache: Path) -> dict:
    from support import config_fuzz

    results = []
    t0 = time.perf_counter()
    for i, (kind, name) in enumerate(config_fuzz.all_cases()):
        tmp = work / "config" / f"{i:03d}"
        tmp.mkdir(parents=True)
        r = config_fuzz.run_case(kind, name, cache, tmp)
        results.append(r)
        print(f"  {kind:8s} {name:28s} {r.verdict()}", flush=True)
    bad = [r for r in results if not r.clear]
    return {"cases": len(results), "clear_message": len(results) - len(bad),
            "escaped_exception": sum(1 for r in bad if r.escaped),
            "wrong_exit_or_message": sum(1 for r in bad if not r.escaped),
            "not_clear": [f"{r.kind}:{r.name}: {r.verdict()}" for r in bad], "s": round(time.perf_counter() - t0, 1)}


def _disk_index(work: Path, src: Path, name: str, size: int, limit: int, n_expected: int) -> dict:
    from support import index_fuzz as fuzz

    out = work / "disk" / name
    full = fuzz.run_index(src, out, workers=2, size=size, fsize=limit, peak_rss=False)
    rows = fuzz.read_rows(out)
    ok_without_files = sum(1 for r in rows if r.get("status") == "ok" and fuzz.check_cached_files(out, r))
    tmp_left = len(list(out.rglob("*.tmp-*")))
    again = fuzz.run_index(src, out, workers=2, size=size, peak_rss=False)
    rows = fuzz.read_rows(out)
    ok_after = sum(1 for r in rows if r.get("status") == "ok")
    sources = [r["source"] for r in rows]
    lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    return {"exit": full.returncode, "traceback": "Traceback" in full.output,
            "message": lines[0][:200] if lines else (full.output.strip().splitlines() or [""])[-1][:200],
            "ok_rows_without_files": ok_without_files, "tmp_files_left": tmp_left,
            "rerun_exit": again.returncode, "ok_after_rerun": ok_after, "expected_ok": n_expected,
            "duplicate_rows": len(sources) - len(set(sources)),
            "passed": (full.returncode == 2 and not ("Traceback" in full.output) and ok_without_files == 0
                       and tmp_left == 0 and ok_after == n_expected)}


def scenario_disk(work: Path, phantoms: Path, cache: Path) -> dict:
    import sys as _sys

    from support import procs
    from mammodino.train import checkpoint as ckpt

    out = {}
    t0 = time.perf_counter()
    out["cache_images"] = _disk_index(work, phantoms, "images", 256, 64_000, 14)
    ffdm = work / "disk" / "ffdm-src"
    ffdm.mkdir(parents=True)
    for p in sorted((phantoms / "ffdm").glob("*.dcm")):
        os.symlink(p, ffdm / p.name)
    out["cache_manifest"] = _disk_index(work, ffdm, "manifest", 16, 2_000, 12)

    run_dir = work / "disk" / "run"
    base = [_sys.executable, "-m", "mammodino", "pretrain", "--config", "cpu-tiny", "--data", str(cache), "--out",
            str(run_dir), "--no-progress", *MICRO, "train.steps=3", "train.checkpoint_every=1"]
    first = procs.run(base + ["--stop-at", "1"], env=procs.quiet_env(), timeout=600)
    size = (run_dir / ckpt.LAST).stat().st_size
    full = procs.run(base + ["--resume"], env=procs.quiet_env(), timeout=600, fsize=size // 2)
    lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    _, meta = ckpt.load_checkpoint(run_dir / ckpt.LAST)
    resumed = procs.run(base + ["--resume"], env=procs.quiet_env(), timeout=600)
    _, meta_after = ckpt.load_checkpoint(run_dir / ckpt.LAST)
    out["checkpoint"] = {"first_exit": first.returncode, "exit": full.returncode, "traceback": "Traceback" in full.output,
                         "message": lines[0][:200] if lines else full.output[-200:],
                         "checkpoint_step_after_failure": meta["state"]["step"],
                         "partial_left": bool(list(run_dir.glob("*" + ckpt.TMP_SUFFIX))),
                         "resume_exit": resumed.returncode, "step_after_resume": meta_after["state"]["step"],
                         "passed": (full.returncode == 2 and not ("Traceback" in full.output)
                                    and meta["state"]["step"] == 1 and meta_after["state"]["step"] == 3)}
    out["metrics_log"] = _metrics_enospc(work, cache)
    out["s"] = round(time.perf_counter() - t0, 1)
    return out


def _metrics_enospc(work: Path, cache: Path) -> dict:
    """metrics.jsonl's handle turns into a full disk after its first line."""
    import contextlib
    import io

    from mammodino.cli import main
    from support.procs import FullDisk
    from mammodino.train import metrics_log

    real_init = metrics_log.MetricsLog.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        if self.fh is not None:
            self.fh = FullDisk(self.fh, after_writes=1)

    metrics_log.MetricsLog.__init__ = init
    err = io.StringIO()
    escaped = ""
    rc = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["pretrain", "--config", "cpu-tiny", "--data", str(cache), "--out", str(work / "disk" / "metrics"),
                       "--no-progress", *MICRO, "train.steps=3", "train.checkpoint_every=1"])
    except Exception as exc:  # noqa: BLE001 - the finding
        escaped = f"{type(exc).__name__}: {exc}"
    finally:
        metrics_log.MetricsLog.__init__ = real_init
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    return {"exit": rc, "escaped": escaped, "message": lines[0][:200] if lines else "",
            "passed": rc == 2 and not escaped}


def scenario_nan(work: Path, cache: Path) -> dict:
    import contextlib
    import io

    from mammodino.config import load_config
    from mammodino.train import checkpoint as ckpt
    from mammodino.train.trainer import NonFiniteLossError, pretrain

    def poison(steps, what="global_crops", value=float("nan")):
        def hook(step, batch):
            if step in steps:
                batch[what][0, 0, 0, 0] = value
            return batch

        return hook

    plans = {
        "one NaN batch (step 3)": poison({3}),
        "+inf in a local crop (step 2)": poison({2}, "local_crops", float("inf")),
        "NaN in 2 batches apart (3, 6)": poison({3, 6}),
        "NaN from step 4 on": poison(set(range(4, 100))),
        "NaN in every batch": poison(set(range(100))),
    }
    results = {}
    t0 = time.perf_counter()
    for i, (name, hook) in enumerate(plans.items()):
        cfg = load_config("cpu-tiny", MICRO + ["train.steps=8", "train.checkpoint_every=2", "train.max_nonfinite_steps=3"])
        run_dir = work / "nan" / f"{i}"
        t1 = time.perf_counter()
        outcome = "completed"
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                with tampered_batches(hook):
                    pretrain(cfg, [cache], run_dir, progress=False)
        except NonFiniteLossError as exc:
            outcome = f"stopped: {str(exc)[:90]}..."
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        skipped = [r["step"] for r in rows if "skipped" in r]
        finite, step = None, None
        if (run_dir / ckpt.LAST).exists():
            tensors, meta = ckpt.load_checkpoint(run_dir / ckpt.LAST)
            finite = all(bool(torch.isfinite(v).all()) for v in tensors.values() if v.is_floating_point())
            step = meta["state"]["step"]
        results[name] = {"skipped_steps": skipped, "outcome": outcome, "checkpoint_step": step,
                         "checkpoint_finite": finite, "s": round(time.perf_counter() - t1, 1)}
        print(f"  {name:32s} skipped {skipped}, {outcome}, checkpoint step {step}, finite {finite}", flush=True)
    return {"runs": results, "s": round(time.perf_counter() - t0, 1),
            "passed": all(r["checkpoint_finite"] is not False for r in results.values())}


def scenario_inputs(work: Path, cache: Path, args) -> dict:
    """Round two: crafted weight files (in process, every loader), hostile caches (the CLI in
    subprocesses with a timeout: embed and pretrain), an existing --out for every writer.
    Figures: cases, clear errors, tracebacks, hangs, bytes of the planted secret found, peak
    RSS per command."""
    import contextlib
    import io

    from mammodino.cli import main
    from mammodino.errors import UserError
    from mammodino.models.loading import load_backbone
    from support import cache_faults as cf
    from support import weight_cases as wc

    t0 = time.perf_counter()
    weights = {"cases": 0, "clear": 0, "raw_error": [], "loaded": []}
    for name, build in wc.CASES.items():
        path = build(work / "weights" / name)
        weights["cases"] += 1
        try:
            load_backbone(path)
            weights["loaded"].append(name)
        except UserError:
            weights["clear"] += 1
        except BaseException as exc:  # noqa: BLE001 - the finding
            weights["raw_error"].append(f"{name}: {type(exc).__name__}")
    print(f"  weights: {weights['clear']}/{weights['cases']} clear, raw {weights['raw_error']}, loaded {weights['loaded']}",
          flush=True)

    outs = {"cases": 0, "clear": 0, "overwritten": 0, "traceback": 0}
    ckpt = wc.write_training_checkpoint(work / "outs" / "run" / "checkpoint-last.safetensors")
    for cmd in ("export", "embed", "attention", "preview", "probe", "report"):
        target = work / "outs" / (f"{cmd}.existing" + (".npz" if cmd == "embed" else ""))
        target.write_bytes(b"precious")
        argv = {"export": ["export", str(ckpt), str(target)],
                "embed": ["embed", str(ckpt), str(cache), str(target), "--no-progress"],
                "attention": ["attention", str(ckpt), "x", "--cache", str(cache), "--out", str(target)],
                "preview": ["preview", str(cache), "--out", str(target)],
                "probe": ["probe", str(target), "--task", "phantom-lesion", "--out", str(target)],
                "report": ["report", str(ckpt.parent), "--out", str(target)]}[cmd]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main(argv)
        except BaseException:  # noqa: BLE001
            outs["traceback"] += 1
            rc = None
        outs["cases"] += 1
        outs["clear"] += int(rc == 2 and err.getvalue().startswith("error:"))
        outs["overwritten"] += int(target.read_bytes() != b"precious")
    print(f"  --out naming an existing file: {outs}", flush=True)

    results = []
    for name in cf.MANIFEST_CASES:
        case_cache = cf.make_case(name, cache, work / "caches")
        for command in args.input_commands.split(","):
            o = cf.run_case(name, command, case_cache, work / "caches", timeout=120, peak_rss=True)
            results.append(o)
            print(f"  {o.verdict:9s} {command:8s} {name:34s} {o.seconds:5.1f} s  secret {o.secret_bytes} B  "
                  f"{o.peak_rss_mb} MiB  {o.message[:110]}", flush=True)
    more = _more_inputs(work, args)
    by = __import__("collections").Counter(o.verdict for o in results)
    rss = {}
    for o in results:
        if o.peak_rss_mb is not None:
            rss[o.command] = max(rss.get(o.command, 0), o.peak_rss_mb)
    unexpected = [f"{o.command}: {o.case}: {o.verdict}" for o in results
                  if o.verdict != ("ok" if o.case in cf.MAY_COMPLETE else "clear")
                  and not (o.case in cf.MAY_COMPLETE and o.verdict == "clear")]
    return {"weights": weights, "outs": outs, "cache_runs": len(results), "cache_cases": len(cf.MANIFEST_CASES),
            "verdicts": dict(by), "tracebacks": by.get("traceback", 0) + len(weights["raw_error"]) + outs["traceback"],
            "hangs": by.get("hang", 0), "secret_bytes": sum(o.secret_bytes for o in results),
            "peak_rss_mb_per_command": rss, "unexpected": unexpected, "more": more,
            "s": round(time.perf_counter() - t0, 1)}


def _verdict(res) -> tuple[str, str]:
    from support import cache_faults as cf

    return cf.classify(res)


def _mb(res) -> float | None:
    return None if res.peak_rss_bytes is None else round(res.peak_rss_bytes / 2**20, 1)


def _more_inputs(work: Path, args) -> dict:
    """Round two, second part: label tables (hostile ones in process; a ~200 MB RSNA-like one
    streamed and loaded, a 1 GB one with a bad value near the top: peak RSS in
    subprocesses), DICOM headers declaring huge sizes (index and attention), names that are
    not UTF-8 (index), folders of non-DICOM files (attention). One figures dict per group:
    cases, clear, ok, tracebacks, hangs, planted-name bytes found, peak RSS."""
    import contextlib
    import io

    import numpy as np

    from mammodino.errors import UserError
    from mammodino.eval.tasks import load_task
    from support import input_faults as inf
    from support import procs

    groups = {}

    def group(name):
        return groups.setdefault(name, {"cases": 0, "clear": 0, "ok": 0, "traceback": 0, "hang": 0, "other": 0,
                                        "phi_bytes": 0, "peak_rss_mb": 0.0, "not_as_expected": [], "s": 0.0})

    def count(g, name, verdict, expected, message, rss=None, phi=0, seconds=0.0):
        g["cases"] += 1
        g[verdict if verdict in g else "other"] += 1
        g["phi_bytes"] += phi
        g["s"] = round(g["s"] + seconds, 1)
        if rss is not None:
            g["peak_rss_mb"] = max(g["peak_rss_mb"], rss)
        ok = verdict == expected or (expected == "either" and verdict in ("ok", "clear"))
        if not ok:
            g["not_as_expected"].append(f"{name}: {verdict}: {message[:160]}")
        print(f"  {verdict:9s} {name:52s} {seconds:6.1f} s  {rss if rss is not None else '-':>7} MiB  phi {phi} B  "
              f"{message[:110]}", flush=True)

    # -- label tables, hostile (in process: every one a UserError)
    g = group("label tables: hostile")
    for name, path in inf.hostile_tables(work / "tables").items():
        t1 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                load_task("rsna-cancer", path)
                verdict, message = "ok", "loaded"
            except UserError as exc:
                verdict, message = "clear", str(exc)
            except BaseException as exc:  # noqa: BLE001 - the finding
                verdict, message = "traceback", f"{type(exc).__name__}: {exc}"
        count(g, name, verdict, "clear", message, seconds=time.perf_counter() - t1)

    # -- label tables, large (subprocesses, peak RSS)
    g = group("label tables: large")
    t1 = time.perf_counter()
    big = work / "tables" / "rsna-200MB.csv"
    n_big = inf.write_rsna_table(big, args.table_mb * 10**6)
    huge = work / "tables" / "rsna-1GB-bad-line-1000.csv"
    inf.write_rsna_table(huge, args.bad_table_mb * 10**6, bad_at_line=1000, bad_value="yes")
    g["tables"] = {"rows_of_big": n_big, "big_mb": round(big.stat().st_size / 1e6), "bad_mb": round(huge.stat().st_size / 1e6),
                   "write_s": round(time.perf_counter() - t1, 1)}
    base = procs.run([sys.executable, "-c", "import mammodino.eval.tasks"], env=procs.quiet_env(), peak_rss=True)
    g["tables"]["baseline_rss_mb"] = _mb(base)
    for mode, path, expected, label in (("stream", big, "ok", f"{g['tables']['big_mb']} MB table, read_table streamed"),
                                        ("load", big, "ok", f"{g['tables']['big_mb']} MB table, load_task"),
                                        ("load", huge, "clear", f"{g['tables']['bad_mb']} MB table, bad value line 1000")):
        res = inf.run_table(mode, path, timeout=1800)
        verdict, message = _verdict(res)
        count(g, label, verdict, expected, message if verdict != "ok" else res.stdout.strip().replace("\n", "; "),
              rss=_mb(res), seconds=res.seconds)
        g["tables"][f"{mode} {path.name}"] = {"rss_mb": _mb(res), "s": round(res.seconds, 1), "verdict": verdict}
    g["tables"]["bytes_per_labelled_row"] = round(
        (g["tables"][f"load {big.name}"]["rss_mb"] - g["tables"]["baseline_rss_mb"]) * 2**20 / max(n_big, 1))

    # -- DICOM headers declaring huge sizes: index (workers 2) and attention on each
    g = group("DICOM headers: huge Rows/Columns/NumberOfFrames")
    cases = inf.huge_dicoms(work / "huge-dicom")
    res = procs.run(inf.index_cmd(work / "huge-dicom", work / "huge-dicom-cache"), env=procs.quiet_env(), timeout=600,
                    peak_rss=True)
    verdict, message = _verdict(res)
    rows = (work / "huge-dicom-cache" / "manifest.csv").read_text().splitlines()[1:] if verdict == "ok" else []
    ok_rows = sum(1 for r in rows if ",ok," in r)
    refused = sum(1 for r in rows if "too large" in r or "truncated pixel data" in r)
    if verdict == "ok" and (ok_rows or refused != len(cases)):
        verdict, message = "other", f"{ok_rows} ok rows, {refused} of {len(cases)} refused for size"
    count(g, f"index: {len(cases)} files/series", verdict, "ok", message + f" ({refused} refused for size)",
          rss=_mb(res), seconds=res.seconds)
    for name, path in cases.items():
        out = work / "huge-dicom-att" / str(abs(hash(name)))
        target = path if path.is_file() else sorted(path.glob("*.dcm"))[0]
        res = procs.run(inf.attention_cmd(target, out), env=procs.quiet_env(), timeout=300, peak_rss=True)
        verdict, message = _verdict(res)
        count(g, f"attention: {name}", verdict, "clear", message, rss=_mb(res), seconds=res.seconds)

    # -- names that are not valid UTF-8: index, workers 1 and 2, then resumed
    g = group("names not valid UTF-8 (index)")
    from support.dicom_files import write_mammo_dicom

    yy, xx = np.mgrid[0:200, 0:150]
    breast = np.where(((yy - 100) / 80.0) ** 2 + (xx / 110.0) ** 2 <= 1, 2500 + (xx * 7) % 900, 0).astype(np.uint16)
    good = write_mammo_dicom(work / "names-seed.dcm", breast, patient_id="ANON-1")
    src = inf.bad_name_tree(work / "names-src", good)
    for workers, cache_name, label in ((1, "names-cache-1", "index --workers 1"), (2, "names-cache-2", "index --workers 2"),
                                       (2, "names-cache-2", "index --workers 2 again (resume)")):
        cache = work / cache_name
        res = procs.run(inf.index_cmd(src, cache, workers), env=procs.quiet_env(), timeout=600, peak_rss=True)
        verdict, message = _verdict(res)
        rows = (cache / "manifest.csv").read_text(encoding="utf-8").splitlines()[1:] if verdict == "ok" else []
        if verdict == "ok" and len(rows) != inf.BAD_NAME_SOURCES:
            verdict, message = "other", f"{len(rows)} manifest rows for {inf.BAD_NAME_SOURCES} sources"
        count(g, label, verdict, "ok", message, rss=_mb(res), phi=inf.planted_bytes(res.stdout + res.stderr, cache),
              seconds=res.seconds)

    # -- attention given folders of PNGs / non-DICOM files
    g = group("attention: folders and non-DICOM files")
    for name, (target, expected) in inf.attention_folders(work / "att-inputs").items():
        out = work / "att-out" / str(abs(hash(name)))
        res = procs.run(inf.attention_cmd(target, out), env=procs.quiet_env(), timeout=300, peak_rss=True)
        verdict, message = _verdict(res)
        if verdict == "ok" and not list(out.glob("*_attention.png")):
            verdict, message = "other", "exit 0 without an attention PNG"
        count(g, name, verdict, expected, message, rss=_mb(res), phi=inf.planted_bytes(res.stdout + res.stderr, out),
              seconds=res.seconds)
    return groups


# --------------------------------------------------------------------------- table


def figures_table(fig: dict) -> str:
    rows = [("scenario", "figures", "seconds")]
    if "kill" in fig:
        k = fig["kill"]
        rows.append(("kill + resume", f"{k['kills']} kills survived ({k['kills_during_checkpoint_write']} during a "
                     f"checkpoint write), {k['resumes']} resumes, {k['steps']} steps; max |diff| weights "
                     f"{k['max_abs_diff_weights']}, all tensors {k['max_abs_diff_all_tensors']}; problems {len(k['problems'] or [])}",
                     f"{k['reference_s']} (yardstick) + {k['killed_run_s']}"))
    if "fuzz" in fig:
        f = fig["fuzz"]
        top = ", ".join(f"{n} {r[:40]}" for r, n in list(f["skipped_by_reason"].items())[:6])
        rows.append(("index fuzz", f"{f['cases']} cases ({f['families']} families, {f['rsna_derived_cases']} from RSNA): "
                     f"{f['ok']} ok, {f['skipped']} skipped; escaped {f['escaped']}; catch-all rows {f['catch_all_rows']}; "
                     f"broken expectations {f['violations_by_category']}; SRC unchanged {f['src_unchanged']}; "
                     f"peak RSS {f['peak_rss_mb']} MiB (clean seeds: {f['yardstick_clean_seeds']['peak_rss_mb']} MiB). "
                     f"Top reasons: {top}",
                     f"{f['index_s']} (clean seeds {f['yardstick_clean_seeds']['s']})"))
    if "config" in fig:
        c = fig["config"]
        rows.append(("config fuzz", f"{c['cases']} cases: {c['clear_message']} one clear message, "
                     f"{c['escaped_exception']} tracebacks, {c['wrong_exit_or_message']} wrong exit/message", str(c["s"])))
    if "disk" in fig:
        d = fig["disk"]
        for key in ("cache_images", "cache_manifest", "checkpoint", "metrics_log"):
            v = d[key]
            rows.append((f"disk full: {key}", ", ".join(f"{a}={b}" for a, b in v.items() if a != "passed")
                         + f" -> {'PASS' if v['passed'] else 'FAIL'}", ""))
        rows[-1] = rows[-1][:2] + (str(d["s"]),)
    if "nan" in fig:
        for name, v in fig["nan"]["runs"].items():
            rows.append((f"NaN: {name}", f"skipped {v['skipped_steps']}, {v['outcome']}, checkpoint step "
                         f"{v['checkpoint_step']} finite {v['checkpoint_finite']}", str(v["s"])))
    if "inputs" in fig:
        v = fig["inputs"]
        w, o = v["weights"], v["outs"]
        rows.append(("crafted weight files", f"{w['cases']} cases: {w['clear']} clear errors, {len(w['raw_error'])} raw "
                     f"errors, {len(w['loaded'])} loaded", ""))
        rows.append(("--out naming a file", f"{o['cases']} commands: {o['clear']} clear errors, {o['overwritten']} "
                     f"overwritten, {o['traceback']} tracebacks", ""))
        rows.append(("hostile caches", f"{v['cache_cases']} cases x {v['cache_runs'] // max(v['cache_cases'], 1)} commands: "
                     f"{v['verdicts']}; tracebacks {v['tracebacks']}, hangs {v['hangs']}, secret bytes found "
                     f"{v['secret_bytes']}; peak RSS {v['peak_rss_mb_per_command']} MiB; unexpected {v['unexpected']}",
                     str(v["s"])))
        for name, m in v.get("more", {}).items():
            extra = ""
            if "tables" in m:
                t = m["tables"]
                extra = "; " + ", ".join(f"{k}: {b['rss_mb']} MiB {b['s']} s" for k, b in t.items() if isinstance(b, dict)) \
                    + f"; baseline {t['baseline_rss_mb']} MiB; {t['bytes_per_labelled_row']} B per labelled row"
            rows.append((name, f"{m['cases']} cases: {m['clear']} clear errors, {m['ok']} handled (exit 0), "
                         f"{m['traceback']} tracebacks, {m['hang']} hangs, {m['other']} other; planted-name bytes "
                         f"{m['phi_bytes']}; peak RSS {m['peak_rss_mb']} MiB; not as expected {m['not_as_expected']}{extra}",
                         str(m["s"])))
    return "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows[:1] + [("---", "---", "---")] + rows[1:])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="kill,fuzz,config,disk,nan,inputs")
    p.add_argument("--input-commands", default="embed,pretrain", help="commands run on each hostile cache")
    p.add_argument("--table-mb", type=int, default=200, help="size of the large label table (inputs)")
    p.add_argument("--bad-table-mb", type=int, default=1000, help="size of the table with a bad value at line 1000")
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mutants", type=int, default=1500)
    p.add_argument("--rsna-full", type=int, default=3, help="whole RSNA files used as good seeds (slow to decode)")
    p.add_argument("--size", type=int, default=128, help="cache long side for the fuzz run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="work folder (default: a temporary one, removed)")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    only = set(args.only.split(","))
    tmp = tempfile.TemporaryDirectory(prefix="faults-") if args.work is None else None
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    print(f"faults benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
          f"torch {torch.__version__}, work {work}", flush=True)
    figures: dict = {}
    seconds: dict = {}
    phantoms, cache = make_phantoms(work)
    for name, fn in (("kill", lambda: scenario_kill(work, cache, args)), ("fuzz", lambda: scenario_fuzz(work, args)),
                     ("config", lambda: scenario_config(work, cache)), ("disk", lambda: scenario_disk(work, phantoms, cache)),
                     ("nan", lambda: scenario_nan(work, cache)), ("inputs", lambda: scenario_inputs(work, cache, args))):
        if name not in only:
            continue
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        figures[name] = fn()
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"== {name}: {seconds[name]} s", flush=True)
    figures["seconds_per_scenario"] = seconds
    print("\n" + figures_table(figures))
    print("\nseconds per scenario: " + ", ".join(f"{k} {v}" for k, v in seconds.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
