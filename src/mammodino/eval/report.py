"""One self-contained HTML page per run (``mammodino report RUN_DIR``).

Everything is inlined (plots and images as base64 PNG, CSS in the page), so the file can be
mailed or attached to a ticket. Sections: configuration, training curves (every loss term,
learning rate, images/s), collapse monitor (teacher prototype entropy, prototypes in use,
CLS feature std), crop preview, probe results with CIs, ROC curves, fine-tunes (results, calibration,
training curve, a fine-tuned-vs-probe table), attention maps. A part
that is missing (no probe run yet, no attention maps) is noted in its section, never an
error.

The report reads only outputs that are already pseudonymous (metrics, config, results.json
with counts and class names, PNGs); from ``summary.json`` it shows counts and notes only.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path

from mammodino import atomic
from mammodino.eval.results import REQUIRED_KEYS
from mammodino.train.metrics_log import read_metrics

LOSS_KEYS = ("loss", "dino_loss", "ibot_loss", "koleo_loss", "slice_loss")
COLLAPSE_KEYS = ("teacher_entropy", "prototypes_in_use", "cls_std")
SECTIONS = ("Configuration", "Training curves", "Collapse monitor", "Crop preview", "Probe results",
            "ROC curves", "Fine-tuning", "Attention maps")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em;max-height:30em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.missing{color:#a60;font-style:italic}.warn{color:#b00;font-weight:bold}
figure{display:inline-block;margin:.4em;vertical-align:top}figcaption{font-size:.8em;color:#555;text-align:center}
img{max-width:100%}
"""


def _png_tag(data: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _figure(data: bytes, caption: str, width: int | None = None) -> str:
    return f"<figure>{_png_tag(data, caption, width)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _missing(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def _series(rows, keys):
    out = {}
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if pts:
            out[k] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def _config_section(run_dir: Path) -> tuple[str, dict]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return _missing("No config.yaml in the run folder."), {}
    text = path.read_text()
    cfg = {}
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    except Exception:  # noqa: BLE001 (the text is still shown)
        cfg = {}
    return f"<pre>{html.escape(text)}</pre>", cfg


def _training_section(rows, skipped) -> str:
    from mammodino.eval.plots import line_plot

    if not rows:
        return _missing("No metrics.jsonl (or no logged step) in the run folder.")
    parts = []
    loss_keys = list(LOSS_KEYS) + sorted({k for r in rows for k in r if k.endswith("_loss")} - set(LOSS_KEYS))
    losses = _series(rows, loss_keys)
    if losses:
        parts.append(_figure(line_plot(losses, "loss terms"), "loss and its components"))
    for key, title, logy in (("lr", "learning rate", False), ("images_per_s", "throughput (images/s)", False)):
        s = _series(rows, [key])
        if s:
            parts.append(_figure(line_plot(s, title, ylabel=key, logy=logy), title))
    last = rows[-1]
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td class=num>{_num(last.get(k))}</td></tr>"
        for k in ("step",) + LOSS_KEYS + ("lr", "images_per_s")
        if k in last
    )
    parts.append(f"<p>Last logged step:</p><table>{cells}</table>")
    if skipped:
        parts.append(f'<p class="warn">{skipped} steps were skipped for non-finite losses.</p>')
    return "\n".join(parts)


def _collapse_section(rows, cfg) -> str:
    from mammodino.eval.plots import line_plot

    if not rows:
        return _missing("No metrics.jsonl: nothing to monitor.")
    mon = cfg.get("monitor", {}) if isinstance(cfg, dict) else {}
    n_proto = (cfg.get("dino", {}) or {}).get("n_prototypes") if isinstance(cfg, dict) else None
    parts = []
    for key in COLLAPSE_KEYS:
        s = _series(rows, [key])
        if not s:
            parts.append(_missing(f"{key} was not logged."))
            continue
        hline = None
        if key == "cls_std":
            hline = mon.get("collapse_min_cls_std")
        if key == "prototypes_in_use" and n_proto and mon.get("collapse_min_prototypes_frac"):
            hline = max(2.0, mon["collapse_min_prototypes_frac"] * n_proto)
        parts.append(_figure(line_plot(s, key, ylabel=key, hline=hline), key + (" (dashed: warning threshold)" if hline else "")))
    last = rows[-1]
    low_std = mon.get("collapse_min_cls_std")
    if isinstance(last.get("cls_std"), (int, float)) and low_std is not None and last["cls_std"] < low_std:
        parts.append(f'<p class="warn">At the last logged step (step {last["step"]}) the CLS feature std '
                     f"{last['cls_std']:.3g} is below {low_std}: the features may have collapsed.</p>")
    parts.append(_learning_note(last, n_proto, (cfg.get("crops", {}) or {}).get("local_crops_number")
                                if isinstance(cfg, dict) else None))
    flagged = [r["step"] for r in rows if r.get("collapsed") is True]
    if flagged:
        parts.append(f'<p class="warn">Collapse warning at {len(flagged)} logged steps (first at step {flagged[0]}, '
                     f"last at {flagged[-1]}).</p>")
    else:
        parts.append("<p>No logged step was flagged as collapsed.</p>")
    return "\n".join(parts)


def learning_state(last: dict, n_prototypes, local_crops_number) -> tuple[str, float | None, float | None]:
    """("not learning" | "learning" | "unknown", DINO CE / ln K, teacher entropy / ln K) at a
    logged step. At ln K the teacher's targets are uniform and the DINO term teaches nothing."""
    if not n_prototypes or not isinstance(last.get("dino_global_loss"), (int, float)):
        return "unknown", None, None
    ln_k = math.log(float(n_prototypes))
    n_terms = 2 + 2 * int(local_crops_number or 0)
    ce = float(last["dino_global_loss"]) * n_terms / 2 / ln_k
    ent = last.get("teacher_sample_entropy")
    ent = float(ent) / ln_k if isinstance(ent, (int, float)) else None
    stuck = ce > 0.9 or (ent is not None and ent > 0.9)
    return ("not learning" if stuck else "learning"), ce, ent


def _learning_note(last: dict, n_prototypes, local_crops_number) -> str:
    state, ce, ent = learning_state(last, n_prototypes, local_crops_number)
    if state == "unknown":
        return ""
    ent_txt = f", teacher per-sample entropy {ent:.2f} ln K" if ent is not None else ""
    if state == "not learning":
        return (f'<p class="warn">At step {last["step"]} the DINO CLS cross-entropy is {ce:.2f} ln K{ent_txt}: the '
                "teacher's targets are (nearly) uniform, so the DINO term has not started to learn and the total "
                "loss moves only with iBOT, KoLeo and the slice term (a rising total loss is then no sign of "
                "learning or of divergence). Small batches on look-alike mammogram crops cause this; see README "
                '"Evidence" (lower teacher temperature, smaller bottleneck, more steps).</p>')
    return (f"<p>At step {last['step']} the DINO CLS cross-entropy is {ce:.2f} ln K{ent_txt}: the teacher gives "
            "sharp, image-dependent targets and the DINO term is learning.</p>")


def _num(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.4g}"
    return html.escape(str(v))


def find_probe_dirs(run_dir: Path, extra=()) -> list[Path]:
    dirs = [p.parent for p in sorted(run_dir.glob("probe*/results.json"))]
    dirs += [p.parent for p in sorted(run_dir.glob("probe*/*/results.json"))]
    for e in extra or ():
        e = Path(e)
        if (e / "results.json").exists():
            dirs.append(e)
        else:
            dirs += [p.parent for p in sorted(e.glob("*/results.json"))]
    seen, out = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _probe_table(entries: list[dict]) -> str:
    has_drop = any(e.get("perturbation") for e in entries)
    head = ["task", "probe", "level", "labels", "input", "n_train", "n_test", "metric", "value", "95% CI"]
    if has_drop:
        head.append("drop")
    rows = []
    for e in entries:
        cells = [
            html.escape(str(e["task"])), html.escape(str(e["probe"])), html.escape(str(e["level"])),
            f"{100 * float(e['label_fraction']):g}%", html.escape(str(e.get("perturbation") or "clean")),
            f"<td class=num>{int(e['n_train'])}", f"<td class=num>{int(e['n_test'])}", html.escape(str(e["metric"])),
            f"<td class=num>{_num(e['value'])}", f"<td class=num>[{_num(e['ci_low'])}, {_num(e['ci_high'])}]",
        ]
        if has_drop:
            cells.append(f"<td class=num>{_num(e.get('drop')) if e.get('perturbation') else ''}")
        rows.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _summary_line(d: Path) -> str:
    f = d / "summary.json"
    if not f.exists():
        return ""
    try:
        s = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    counts = ", ".join(f"{html.escape(str(c))}: {int(n)}" for c, n in zip(s.get("classes", []), s.get("class_counts", [])))
    text = (
        f"{int(s.get('labelled_images', 0))} labelled images from {int(s.get('patients', 0))} patients ({counts}); "
        f"{int(s.get('label_rows_without_image', 0))} label rows have no image in the features; "
        f"{int(s.get('features_without_label', 0))} features have no label. Split: {html.escape(str(s.get('split', '')))}."
    )
    skipped = "".join(f"<li>{html.escape(str(x))}</li>" for x in s.get("skipped", []))
    return f"<p>{text}</p>" + (f"<ul>{skipped}</ul>" if skipped else "")


def _probe_sections(dirs: list[Path]) -> tuple[str, str]:
    if not dirs:
        msg = "No probe results (run `mammodino probe ... --out RUN_DIR/probe-<task>` or pass --probe DIR)."
        return _missing(msg), _missing("No ROC curves (they come with the probe results).")
    tables, rocs = [], []
    for d in dirs:
        try:
            entries = json.loads((d / "results.json").read_text())
            if not isinstance(entries, list) or any(not all(k in e for k in REQUIRED_KEYS) for e in entries):
                raise ValueError("not a list of result entries")
        except (OSError, ValueError) as exc:
            tables.append(f"<h3>{html.escape(d.name)}</h3>" + _missing(f"results.json unreadable ({exc})"))
            continue
        tables.append(f"<h3>{html.escape(d.name)}</h3>{_summary_line(d)}{_probe_table(entries)}")
        for png in sorted(d.glob("roc_*.png")):
            rocs.append(_figure(png.read_bytes(), f"{d.name}: {png.stem[4:]}", width=380))
    return "\n".join(tables), ("\n".join(rocs) if rocs else _missing("No ROC curve PNG in the probe folders."))


def _is_finetune(d: Path) -> bool:
    try:
        return str(json.loads((d / "config.json").read_text()).get("format", "")).startswith("mammodino-finetuned")
    except (OSError, ValueError, AttributeError):
        return False


def find_finetune_dirs(run_dir: Path, extra=()) -> list[Path]:
    """``RUN_DIR/finetune*/`` and every extra folder (or its sub-folders) holding a fine-tune."""
    dirs = [p.parent for p in sorted(run_dir.glob("finetune*/results.json"))]
    for e in extra or ():
        e = Path(e)
        dirs += [e] if (e / "results.json").exists() else [p.parent for p in sorted(e.glob("*/results.json"))]
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen and _is_finetune(d):
            seen.add(d.resolve())
            out.append(d)
    return out


def _finetune_summary(d: Path) -> str:
    try:
        s = json.loads((d / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    cal = s.get("calibration") or {}
    stop = s.get("early_stopping") or {}
    enc = s.get("encoder") or {}
    text = (f"{', '.join(map(str, s.get('tasks', [])))}: {int(s.get('labelled_images', 0))} labelled images from "
            f"{int(s.get('patients', 0))} patients; {int(s.get('n_fit', 0))} fit / {int(s.get('n_val', 0))} validation / "
            f"{int(s.get('n_test', 0))} test images ({html.escape(str(s.get('split', '')))}); encoder "
            f"{html.escape(str(enc.get('source', '?')))} ({html.escape(str(enc.get('arch', '?')))}); "
            f"best validation score {_num(stop.get('best_score'))} at step {_num(stop.get('best_step'))}"
            f"{', stopped early' if stop.get('stopped') else ''}.")
    if cal.get("fitted"):
        text += (f" Calibration on the validation split: NLL {_num(cal.get('val_nll_before'))} -> "
                 f"{_num(cal.get('val_nll_after'))}; test ECE {_num(cal.get('test_ece_before'))} -> "
                 f"{_num(cal.get('test_ece_after'))}.")
    return f"<p>{text}</p>"


def _comparison(ft_dirs: list[Path], probe_dirs: list[Path]) -> str:
    """Image-level headline of every fine-tune and every probe of the same task, side by side."""
    from mammodino.eval.results import headline

    rows = []
    for d in ft_dirs:
        try:
            entries = json.loads((d / "results.json").read_text())
        except (OSError, ValueError):
            continue
        for e in entries:
            if e.get("level") == "image" and e.get("metric") in ("auc", "macro_auc"):
                rows.append((e["task"], f"fine-tuned ({e.get('head', '?')} head, {e.get('encoder', '?')}): "
                             f"{d.parent.name}/{d.name}", e))
    tasks = {r[0] for r in rows}
    for d in dict.fromkeys(p.resolve() for p in probe_dirs):
        try:
            entries = json.loads((d / "results.json").read_text())
        except (OSError, ValueError):
            continue
        for probe in ("logistic", "knn"):
            sel = [e for e in entries if e.get("probe") == probe]
            if probe == "logistic":
                e = headline(sel)
            else:
                e = next((x for x in sel if x.get("level") == "image" and x.get("metric") in ("auc", "macro_auc")
                          and float(x.get("label_fraction", 1)) == 1.0 and not x.get("perturbation")), None)
            if e is not None and e["task"] in tasks:
                rows.append((e["task"], f"{probe} probe: {d.parent.name}/{d.name}", e))
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(str(t))}<td>{html.escape(m)}<td>{html.escape(str(e['metric']))}"
                   f"<td class=num>{_num(e['value'])}<td class=num>[{_num(e['ci_low'])}, {_num(e['ci_high'])}]"
                   f"<td class=num>{int(e['n_test'])}</tr>" for t, m, e in sorted(rows, key=lambda r: (r[0], r[1])))
    return ("<h3>Fine-tuned vs probes (image level, same patient split)</h3><table><tr><th>task<th>model<th>metric"
            f"<th>value<th>95% CI<th>n test</tr>{body}</table>")


def _finetune_section(ft_dirs: list[Path], probe_dirs: list[Path]) -> str:
    if not ft_dirs:
        return _missing("No fine-tunes (run `mammodino finetune ... --out RUN_DIR/finetune-<task>` or pass --finetune DIR).")
    parts = [_comparison(ft_dirs, probe_dirs)]
    for d in ft_dirs:
        try:
            entries = json.loads((d / "results.json").read_text())
            if not isinstance(entries, list) or any(not all(k in e for k in REQUIRED_KEYS) for e in entries):
                raise ValueError("not a list of result entries")
        except (OSError, ValueError) as exc:
            parts.append(f"<h3>{html.escape(d.name)}</h3>" + _missing(f"results.json unreadable ({exc})"))
            continue
        figs = [_figure(p.read_bytes(), f"{d.name}: {p.stem}", width=380)
                for p in sorted(d.glob("roc_*.png")) + sorted(d.glob("training_curve.png"))]
        parts.append(f"<h3>{html.escape(d.name)}</h3>{_finetune_summary(d)}{_probe_table(entries)}{''.join(figs)}")
    return "\n".join(parts)


def build_report(run_dir: str | Path, probe_dirs=(), attention_dirs=(), title: str | None = None,
                 finetune_dirs=()) -> str:
    """The HTML text of the report for ``run_dir``."""
    run_dir = Path(run_dir)
    body = []
    cfg_html, cfg = _config_section(run_dir)
    rows, skipped = read_metrics(run_dir / "metrics.jsonl")
    body.append(("Configuration", cfg_html))
    body.append(("Training curves", _training_section(rows, skipped)))
    body.append(("Collapse monitor", _collapse_section(rows, cfg)))
    preview = run_dir / "crop_preview.png"
    body.append(("Crop preview", _figure(preview.read_bytes(), "tissue-aware crops and iBOT masks") if preview.exists()
                 else _missing("No crop_preview.png in the run folder.")))
    found_probes = find_probe_dirs(run_dir, probe_dirs)
    probe_html, roc_html = _probe_sections(found_probes)
    body.append(("Probe results", probe_html))
    body.append(("ROC curves", roc_html))
    body.append(("Fine-tuning", _finetune_section(find_finetune_dirs(run_dir, finetune_dirs), found_probes)))
    att_dirs = [run_dir / "attention"] + [Path(a) for a in attention_dirs or ()]
    pngs = [p for d in att_dirs if d.is_dir() for p in sorted(d.glob("*.png"))]
    body.append(("Attention maps", "\n".join(_figure(p.read_bytes(), p.stem, width=520) for p in pngs) if pngs
                 else _missing("No attention maps (run `mammodino attention CHECKPOINT IMAGE... --out RUN_DIR/attention`).")))
    title = title or f"MammoDINO run: {run_dir.resolve().name}"
    from mammodino import __version__

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    toc = " | ".join(f'<a href="#s{i}">{name}</a>' for i, (name, _) in enumerate(body))
    sections = "\n".join(f'<h2 id="s{i}">{html.escape(name)}</h2>\n{content}' for i, (name, content) in enumerate(body))
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>Generated {stamp} by mammodino {__version__}.</p><p>{toc}</p>\n{sections}\n</body></html>\n"
    )


def is_mammodino_report(path) -> bool:
    """Whether ``path`` is a page :func:`write_report` wrote (so regenerating it loses nothing)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256 * 1024)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>\n<html lang=en>") and b"</h1>\n<p>Generated " in head \
        and b" by mammodino " in head


def write_report(run_dir, out=None, probe_dirs=(), attention_dirs=(), finetune_dirs=()) -> Path:
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report.html"
    text = build_report(run_dir, probe_dirs, attention_dirs, finetune_dirs=finetune_dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, text, suffix=".tmp")
    return out
