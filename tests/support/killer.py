"""SIGKILL a ``mammodino pretrain`` subprocess at random moments and while it writes a
checkpoint, resume it each time with ``--resume``, and compare the final state with an
uninterrupted run of the same length.

A "during write" kill polls the run folder every ~0.2 ms for
``checkpoint-last.safetensors.partial`` (the trainer's temporary file) and kills the
moment it appears, so the trainer is never touched. Every kill is checked on the spot:

- during a write: the partial file is still there (the kill really hit the write),
  ``checkpoint-last.safetensors`` opens and holds the *previous* step (the step of the last
  line of ``metrics.jsonl`` minus one: the trainer logs a step before saving it), and
  :func:`find_resume_checkpoint` picks it, never the partial file;
- the next segment prints ``resuming from checkpoint-last.safetensors at step K`` with
  that same K, and after a segment that was not killed mid-write no partial file is left.

Example:
    >>> report = kill_resume_campaign(cache, work, overrides, kills=["write", "random"], seed=0)  # doctest: +SKIP
    >>> report["max_abs_diff"]                                                                  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from support.procs import quiet_env

LAST = "checkpoint-last.safetensors"
PARTIAL = LAST + ".partial"
RESUMED = re.compile(r"resuming from (\S+) at step (\d+)")
START_LINE = "mammodino pretrain: "


@dataclass
class Segment:
    index: int
    mode: str  # write | random | startup | none (run to the end)
    target_step: int  # kill once metrics.jsonl reached this step
    killed: bool = False
    exit_code: int | None = None
    seconds: float = 0.0
    logged_step: int = 0  # last step in metrics.jsonl when it ended
    checkpoint_step: int | None = None  # step of checkpoint-last after it ended
    partial_left: bool = False
    hit_write: bool = False  # killed while a checkpoint write of this segment was in progress
    resumed_from: int | None = None  # what this segment printed when it started
    delay: float = 0.0  # random mode: seconds after target_step was logged
    problems: list = field(default_factory=list)


def pretrain_cmd(cache, run_dir, overrides: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "mammodino", "pretrain", "--config", "cpu-tiny", "--data", str(cache),
           "--out", str(run_dir), "--no-progress", *overrides]
    return cmd + (["--resume"] if resume else [])


def checkpoint_step(path) -> int | None:
    """The step stored in a checkpoint's metadata; None when it does not open."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return int(json.loads((fh.metadata() or {})["state"])["step"])
    except Exception:  # noqa: BLE001 - missing or damaged: no step
        return None


def logged_step(run_dir) -> int:
    """The last step written to metrics.jsonl (0 when none)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def run_segment(cmd: list[str], env: dict, run_dir: Path, seg: Segment, rng: np.random.Generator,
                log_path: Path, timeout: float = 300, max_delay: float = 1.0, poll: float = 0.0002) -> Segment:
    """Start ``cmd``; kill it as ``seg.mode`` says (or let it finish); fill in ``seg``."""
    run_dir = Path(run_dir)
    partial = run_dir / PARTIAL
    before = _stat_key(partial)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            if seg.mode == "startup":
                # anywhere in start-up: imports, cache scan, model build, checkpoint load,
                # config.yaml, crop preview, metrics.jsonl rewrite
                seg.delay = float(rng.uniform(0.2, max_delay))
                end = time.monotonic() + seg.delay
                while (proc.poll() is None and time.monotonic() < end
                       and START_LINE not in log_path.read_text(errors="replace")):
                    time.sleep(0.002)
            elif seg.mode in ("write", "random"):
                # "mammodino pretrain: ..." is printed (flushed) after metrics.jsonl was cut
                # back to the resumed step and stale partial files were removed
                while (proc.poll() is None and time.monotonic() < deadline
                       and START_LINE not in log_path.read_text(errors="replace")):
                    time.sleep(0.005)
                while proc.poll() is None and time.monotonic() < deadline and logged_step(run_dir) < seg.target_step:
                    time.sleep(0.002)
                if seg.mode == "random":
                    # a random moment within the next step (forward, backward, log or save)
                    seg.delay = float(rng.uniform(0.0, max_delay))
                    end = time.monotonic() + seg.delay
                    while (proc.poll() is None and time.monotonic() < end
                           and logged_step(run_dir) < seg.target_step + 1):
                        time.sleep(0.002)
                else:
                    while proc.poll() is None and time.monotonic() < deadline and not partial.exists():
                        time.sleep(poll)
            if seg.mode != "none" and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                seg.killed = True
            seg.exit_code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            seg.problems.append(f"segment {seg.index} timed out after {timeout} s")
    seg.seconds = time.perf_counter() - t0
    seg.logged_step = logged_step(run_dir)
    seg.checkpoint_step = checkpoint_step(run_dir / LAST)
    seg.partial_left = partial.exists()
    seg.hit_write = seg.killed and seg.partial_left and _stat_key(partial) != before
    text = log_path.read_text(errors="replace")
    match = RESUMED.search(text)
    seg.resumed_from = int(match.group(2)) if match else None
    if not seg.killed and seg.exit_code != 0:
        seg.problems.append(f"segment {seg.index} exited {seg.exit_code}: {text[-1500:]}")
    return seg


def _stat_key(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _check_write_kill(run_dir: Path, seg: Segment, every: int) -> None:
    from mammodino.train.checkpoint import find_resume_checkpoint
    if every == 1 and seg.checkpoint_step is not None and seg.checkpoint_step != seg.logged_step - 1:
        seg.problems.append(f"segment {seg.index}: killed while writing step {seg.logged_step}, "
                            f"checkpoint-last holds step {seg.checkpoint_step} (expected {seg.logged_step - 1})")
    found = find_resume_checkpoint(run_dir)
    if seg.checkpoint_step is not None and (found is None or found.name != LAST):
        seg.problems.append(f"segment {seg.index}: resume would use {found}, not {LAST}")


def compare_states(a_path, b_path) -> dict:
    """Max |a - b| over every tensor of two checkpoints, by group, and the keys that differ."""
    from mammodino.train.checkpoint import load_checkpoint

    a, meta_a = load_checkpoint(a_path)
    b, meta_b = load_checkpoint(b_path)
    out = {"same_keys": sorted(a) == sorted(b), "final_steps": (meta_a["state"]["step"], meta_b["state"]["step"])}
    groups: dict[str, float] = {}
    differing = []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.shape != y.shape:
            differing.append(key)
            groups["shape"] = float("inf")
            continue
        if x.is_floating_point():
            d = float((x.double() - y.double()).abs().max()) if x.numel() else 0.0
        else:
            d = float((x.long() - y.long()).abs().max()) if x.numel() else 0.0
        group = key.split(".")[0] if not key.startswith("optim.") else "optim"
        groups[group] = max(groups.get(group, 0.0), d)
        if d != 0.0:
            differing.append(key)
    out["max_abs_diff_by_group"] = groups
    weights = [v for g, v in groups.items() if g in ("student", "teacher")]
    out["max_abs_diff_weights"] = max(weights) if weights else float("nan")
    out["max_abs_diff"] = max(groups.values()) if groups else float("nan")
    out["differing_keys"] = differing[:20]
    return out


def kill_resume_campaign(cache, work, overrides: list[str], kills: list[str], seed: int = 0,
                         steps: int | None = None, threads: int = 1, timeout: float = 300,
                         reference=None, max_delay: float = 0.6, startup_delay: float = 4.0) -> dict:
    """Run the reference (uninterrupted) and the killed+resumed run; returns a report dict.

    ``overrides``: config key=value list (must include ``train.steps`` unless ``steps``),
    ``train.checkpoint_every`` of 1 makes every step a write to hit. ``kills``: one mode per
    kill: ``"write"`` (the moment a checkpoint write starts), ``"random"`` (0..``max_delay``
    s after a target step was logged) or ``"startup"`` (0.2..``startup_delay`` s after launch). ``reference``: path of an existing reference run
    folder to compare against instead of running one.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if steps is not None:
        overrides = [o for o in overrides if not o.startswith("train.steps=")] + [f"train.steps={steps}"]
    total = int(next(o for o in reversed(overrides) if o.startswith("train.steps=")).split("=", 1)[1])
    every = int(next((o for o in reversed(overrides) if o.startswith("train.checkpoint_every=")),
                     "train.checkpoint_every=500").split("=", 1)[1])
    env = quiet_env(threads)
    report: dict = {"steps": total, "checkpoint_every": every, "kills_planned": len(kills), "segments": []}

    t0 = time.perf_counter()
    if reference is None:
        ref_dir = work / "reference"
        ref = run_segment(pretrain_cmd(cache, ref_dir, overrides, False), env, ref_dir,
                          Segment(-1, "none", total), rng, work / "reference.log", timeout=timeout)
        if ref.problems:
            report["problems"] = ref.problems
            return report
        reference = ref_dir
    report["reference_seconds"] = round(time.perf_counter() - t0, 2)

    # kill targets: distinct logged steps spread over the run, in order
    n = len(kills)
    targets = sorted(rng.choice(np.arange(1, max(2, total - 1)), size=min(n, max(1, total - 2)), replace=False).tolist())
    while len(targets) < n:
        targets.append(targets[-1] if targets else 1)
    run_dir = work / "killed"
    problems = []
    expect_resume_from = None
    segments = []
    t1 = time.perf_counter()
    for i, (mode, target) in enumerate(zip(kills, targets)):
        start = checkpoint_step(run_dir / LAST) or 0
        # every training-time kill comes after some progress, and before the last step
        target = min(max(int(target), start + 1), total - (2 if mode == "random" else 1))
        seg = run_segment(pretrain_cmd(cache, run_dir, overrides, resume=i > 0), env, run_dir,
                          Segment(i, mode, target), rng, work / f"segment-{i}.log", timeout=timeout,
                          max_delay=startup_delay if mode == "startup" else max_delay)
        started = seg.resumed_from is not None or not (seg.killed and seg.mode == "startup")
        if i > 0 and started and expect_resume_from is not None and seg.resumed_from != expect_resume_from:
            seg.problems.append(f"segment {i} resumed from step {seg.resumed_from}, expected {expect_resume_from}")
        if seg.hit_write:  # in write mode by design; a random kill may land in a write too
            _check_write_kill(run_dir, seg, every)
        elif seg.killed and mode == "write":
            seg.problems.append(f"segment {i}: killed in write mode but no new partial file was left "
                                "(the write finished before the kill)")
        elif not seg.killed and seg.partial_left:
            seg.problems.append(f"segment {i}: finished but left a partial checkpoint")
        expect_resume_from = seg.checkpoint_step
        segments.append(seg)
        problems += seg.problems
    final = run_segment(pretrain_cmd(cache, run_dir, overrides, resume=True), env, run_dir,
                        Segment(len(kills), "none", total), rng, work / "final.log", timeout=timeout)
    if expect_resume_from is not None and final.resumed_from != expect_resume_from:
        final.problems.append(f"final segment resumed from step {final.resumed_from}, expected {expect_resume_from}")
    if final.partial_left:
        final.problems.append("a partial checkpoint is left after the final segment")
    segments.append(final)
    problems += final.problems
    report["killed_run_seconds"] = round(time.perf_counter() - t1, 2)
    report["segments"] = [asdict(s) for s in segments]
    report["kills"] = sum(s.killed for s in segments)
    report["kills_during_write"] = sum(s.hit_write for s in segments)
    report["resumes"] = sum(1 for s in segments if s.resumed_from is not None)
    if not problems and final.exit_code == 0:
        report.update(compare_states(Path(reference) / LAST, run_dir / LAST))
        if tuple(report["final_steps"]) != (total, total):
            problems.append(f"final steps {report['final_steps']}, expected {total}")
    report["problems"] = problems
    return report


def format_report(report: dict) -> str:
    lines = [f"{report.get('kills', 0)} kills ({report.get('kills_during_write', 0)} during a checkpoint write), "
             f"{report.get('resumes', 0)} resumes, {report['steps']} steps; max |diff| weights "
             f"{report.get('max_abs_diff_weights')}, all tensors {report.get('max_abs_diff')}"]
    for s in report.get("segments", []):
        lines.append(f"  segment {s['index']:2d} {s['mode']:6s} target {s['target_step']:3d}: "
                     f"{'killed' if s['killed'] else 'exit ' + str(s['exit_code'])} at logged step {s['logged_step']}, "
                     f"checkpoint {s['checkpoint_step']}, {'mid-write, ' if s['hit_write'] else ''}partial left {s['partial_left']}, "
                     f"resumed from {s['resumed_from']}, {s['seconds']:.1f} s")
    for p in report.get("problems", []):
        lines.append(f"  PROBLEM: {p}")
    return "\n".join(lines)
