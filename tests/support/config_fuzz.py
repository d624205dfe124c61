"""Bad configs, bad data folders and bad output paths for ``mammodino pretrain``, run
through the CLI in this process: each must give one clear message (exit 2, the key or path
named, no traceback).

Every case is ``(kind, name)`` with kind in :data:`KINDS`; :func:`run_case` builds what the
case needs under a temporary folder, runs ``mammodino.cli.main`` with stdout/stderr
captured and returns a :class:`CaseResult`. Used by ``tests/test_config_fuzz.py`` and
``benchmarks/faults.py``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from support.micro import MICRO as BASE_MICRO  # noqa: E402

MICRO = BASE_MICRO + ["train.steps=1"]


def _only_skipped(cache: Path, tmp: Path) -> Path:
    d = tmp / "only-skipped"
    d.mkdir()
    lines = (cache / "manifest.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = dict.fromkeys(header, "")
    row.update(id="0" * 16, source="a.dcm", stem="a", status="skipped", reason="not a DICOM file")
    (d / "manifest.csv").write_text(lines[0] + "\n" + ",".join(row[h] for h in header) + "\n")
    return d


def _copy(cache: Path, tmp: Path, name: str) -> Path:
    d = tmp / name
    shutil.copytree(cache, d)
    return d


def _missing_images(cache, tmp):
    d = _copy(cache, tmp, "no-images")
    shutil.rmtree(d / "images")
    return d


def _truncated_images(cache, tmp):
    d = _copy(cache, tmp, "truncated-npy")
    for p in sorted((d / "images").rglob("*.npy")):
        p.write_bytes(p.read_bytes()[:200])  # e.g. copied by a tool that ran out of space
    return d


def _garbage_manifest(cache, tmp):
    d = tmp / "garbage"
    d.mkdir()
    (d / "manifest.csv").write_text("patient,score\nsomeone,3\n")
    return d


def _empty_manifest(cache, tmp):
    d = tmp / "empty-manifest"
    d.mkdir()
    (d / "manifest.csv").write_bytes(b"")
    return d


def _a_file(cache, tmp):
    p = tmp / "cache.txt"
    p.write_text("x")
    return p


def _empty_folder(cache, tmp):
    p = tmp / "empty"
    p.mkdir()
    return p


# name -> (make(cache, tmp) -> folder given to --data, extra text the message must hold)
DATA = {
    "missing": (lambda c, t: t / "no_such_cache", None),
    "a-file": (_a_file, None),
    "empty-folder": (_empty_folder, None),
    "only-skipped-rows": (_only_skipped, None),
    "manifest-of-something-else": (_garbage_manifest, None),
    "empty-manifest": (_empty_manifest, None),
    "images-deleted": (_missing_images, "images/"),
    "images-truncated": (_truncated_images, ".npy"),
}


def _out_is_file(tmp):
    p = tmp / "run.txt"
    p.write_text("x")
    return p


def _out_under_file(tmp):
    (tmp / "file").write_text("x")
    return tmp / "file" / "run"


# name -> make(tmp) -> path given to --out
OUT = {"out-is-a-file": _out_is_file, "out-under-a-file": _out_under_file}

# name -> (YAML text given to --config, key the message must name; None: the file's path)
YAML = {
    "yaml-is-a-list": ("- train\n- steps\n", None),
    "yaml-is-a-number": ("42\n", None),
    "yaml-syntax-error": ("train: [1, 2\n", None),
    "yaml-unknown-key": ("train:\n  batchsize: 4\n", "train.batchsize"),
    "yaml-wrong-type": ("train:\n  steps: many\n", "train.steps"),
    "yaml-section-is-a-value": ("optim: 3\n", "optim"),
}

# name -> (override, key the message must name)
OVERRIDES = {
    # wrong types
    "steps-text": ("train.steps=abc", "train.steps"),
    "batch-list": ("train.batch_size=[1,2]", "train.batch_size"),
    "bool-text": ("train.deterministic=maybe", "train.deterministic"),
    "betas-scalar": ("optim.betas=0.9", "optim.betas"),
    "workers-fraction": ("data.num_workers=1.5", "data.num_workers"),
    "crops-number-text": ("crops.local_crops_number=two", "crops.local_crops_number"),
    "pretrained-number": ("model.pretrained=123", "model.pretrained"),
    # unknown keys, bad choices, missing files
    "unknown-key": ("train.stepz=3", "train.stepz"),
    "unknown-section": ("modle.arch=tiny", "modle"),
    "bad-choice": ("train.precision=fp16", "train.precision"),
    "no-equals": ("trainsteps", "key=value"),
    "pretrained-missing-file": ("model.pretrained=/no/such/weights.pth", "/no/such/weights.pth"),
    # values of the right type that cannot work
    "steps-negative": ("train.steps=-3", "train.steps"),
    "checkpoint-every-zero": ("train.checkpoint_every=0", "train.checkpoint_every"),
    "log-every-zero": ("train.log_every=0", "train.log_every"),
    "workers-negative": ("data.num_workers=-1", "data.num_workers"),
    "seed-negative": ("train.seed=-1", "train.seed"),
    "hidden-dim-zero": ("dino.hidden_dim=0", "dino.hidden_dim"),
    "bottleneck-zero": ("dino.bottleneck_dim=0", "dino.bottleneck_dim"),
    "slice-proj-zero": ("slice.proj_dim=0", "slice.proj_dim"),
    "registers-negative": ("model.num_register_tokens=-1", "model.num_register_tokens"),
    "warmup-negative": ("optim.warmup_fraction=-1", "optim.warmup_fraction"),
    "mask-probability-2": ("ibot.mask_sample_probability=2", "ibot.mask_sample_probability"),
    "student-temp-zero": ("dino.student_temp=0", "dino.student_temp"),
    "slice-temp-zero": ("slice.temperature=0", "slice.temperature"),
}

# name -> (extra CLI arguments, text the message must hold)
ARGS = {
    "preset-missing": (["--config", "no-such-preset"], "no-such-preset"),
    "yaml-file-missing": (["--config", "/no/such/config.yaml"], "/no/such/config.yaml"),
    "steps-not-a-number": (["--steps", "abc"], "--steps"),
}

KINDS = {"override": OVERRIDES, "yaml": YAML, "data": DATA, "out": OUT, "args": ARGS}


def all_cases() -> list[tuple[str, str]]:
    return [(kind, name) for kind, table in KINDS.items() for name in sorted(table)]


@dataclass
class CaseResult:
    kind: str
    name: str
    rc: int | None
    messages: list  # lines starting with "error:" (or argparse's "PROG: error:")
    must_name: str  # what the one message must contain
    escaped: str = ""  # "Type: message" of an exception that left cli.main
    output: str = ""
    must_also: str | None = None  # extra text (data cases)

    @property
    def clear(self) -> bool:
        """Exit 2, one message, naming what it must, no traceback."""
        return (not self.escaped and self.rc == 2 and len(self.messages) == 1
                and self.must_name in self.messages[0] and "Traceback" not in self.output
                and (self.must_also is None or self.must_also in self.output))

    def verdict(self) -> str:
        if self.escaped:
            return f"ESCAPED {self.escaped[:150]}"
        if self.rc != 2:
            return f"exit {self.rc} (expected 2): {self.output.strip().splitlines()[-1][:150] if self.output.strip() else ''}"
        if len(self.messages) != 1:
            return f"{len(self.messages)} error lines"
        if self.must_name not in self.messages[0]:
            return f"message does not name {self.must_name!r}: {self.messages[0][:150]}"
        return "ok" if self.clear else "other"


def argv_for(cache, out, *, config="cpu-tiny", extra_args=(), overrides=()) -> list[str]:
    return ["pretrain", "--config", str(config), "--data", str(cache), "--out", str(out), "--no-progress",
            *extra_args, *MICRO, *overrides]


def run_case(kind: str, name: str, cache, tmp) -> CaseResult:
    """Build and run one case with ``cache`` (a good indexed cache) under ``tmp`` (empty)."""
    from mammodino.cli import main

    tmp = Path(tmp)
    cache = Path(cache)
    must_also = None
    if kind == "override":
        override, must = OVERRIDES[name]
        argv = argv_for(cache, tmp / "run", overrides=[override])
    elif kind == "yaml":
        text, must = YAML[name]
        path = tmp / f"{name}.yaml"
        path.write_text(text)
        must = must or str(path)
        argv = argv_for(cache, tmp / "run", config=path)
    elif kind == "data":
        make, must_also = DATA[name]
        folder = make(cache, tmp)
        must = str(folder)
        argv = argv_for(folder, tmp / "run")
    elif kind == "out":
        out = OUT[name](tmp)
        must = str(out)
        argv = argv_for(cache, out)
    elif kind == "args":
        args, must = ARGS[name]
        argv = argv_for(cache, tmp / "run", extra_args=args)
    else:
        raise ValueError(kind)
    out_buf, err_buf = io.StringIO(), io.StringIO()
    escaped = ""
    rc = None
    with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code
        except Exception as exc:  # noqa: BLE001 - the finding: an exception left the CLI
            escaped = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    err = err_buf.getvalue()
    messages = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    return CaseResult(kind, name, rc, messages, must, escaped, out_buf.getvalue() + err, must_also)
