"""Fine-tuned vs linear probe vs kNN vs random-init fine-tuned, on the same patient split.

Every row comes from production code: ``embed_cache`` + ``run_probe`` for the probes,
``finetune`` for the fine-tunes (same task adapters, same ``task_split``, same seed, so the
test patients are the same for every row). Prints a Markdown table with patient-bootstrap
95 % CIs and writes ``OUT/table.json``.

Examples:
  # the demo's phantoms (after `mammodino demo --out DEMO`)
  python benchmarks/finetune_eval.py --encoder DEMO/run --cache DEMO/cache/eval \\
      --labels DEMO/phantoms/eval/labels.csv --tasks phantom-lesion,phantom-density --out /tmp/ft-eval
  # the 66 real DDSM films of ../shared/data/ddsm_tissue: percent density above the median
  python benchmarks/finetune_eval.py --encoder DEMO/run --ddsm --out /tmp/ft-ddsm
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mammodino.eval.embedding import embed_cache  # noqa: E402
from mammodino.eval.probing import ProbeOptions, run_probe  # noqa: E402
from mammodino.finetune import finetune, load_finetune_config  # noqa: E402
from mammodino.models.loading import load_backbone  # noqa: E402

DDSM = Path(os.environ.get("MAMMODINO_SHARED_DATA", REPO.parent / "shared" / "data")) / "ddsm_tissue"


def machine() -> str:
    from mammodino.machine import one_line

    return one_line()


def ddsm_task(out: Path, size: int) -> tuple[Path, Path, dict]:
    """Index the DDSM films and write a generic table: dense = percent density above the median."""
    from mammodino.data.indexer import index_folder

    cache = out / "ddsm-cache"
    src = out / "ddsm-src"
    pds = {}
    for part in ("train_valid", "test"):
        for png in sorted((DDSM / part / "fgt_seg").glob("*.png")):
            lab = cv2_read(DDSM / part / "fgt_seg_labels" / f"{png.stem}_LI.png")
            fib, adi = int((lab == 192).sum()), int((lab == 128).sum())
            pds[png.stem] = fib / max(fib + adi, 1)
            (src / png.name).parent.mkdir(parents=True, exist_ok=True)
            if not (src / png.name).exists():
                os.symlink(png, src / png.name)
    if not (cache / "manifest.csv").exists():
        index_folder(src, cache, size=size, workers=1, progress=False)
    median = float(np.median(list(pds.values())))
    table = out / "ddsm-dense.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "dense", "patient"])
        for stem, pd in pds.items():
            w.writerow([stem, int(pd > median), stem])
    return cache, table, {"median_percent_density": round(median, 4), "images": len(pds)}


def cv2_read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return img


def _headline(entries, probe, level="image"):
    for e in entries:
        if e["probe"] == probe and e["level"] == level and e["metric"] in ("auc", "macro_auc") \
                and float(e["label_fraction"]) == 1.0 and not e.get("perturbation"):
            return {k: e[k] for k in ("value", "ci_low", "ci_high", "n_test", "metric")}
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True, help="pretrained run folder / checkpoint / export")
    ap.add_argument("--cache")
    ap.add_argument("--labels")
    ap.add_argument("--tasks", default="phantom-lesion,phantom-density")
    ap.add_argument("--ddsm", action="store_true", help="the real DDSM percent-density task (generic table)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--head", default="attention")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-random-finetune", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra, task_options = {}, None
    if args.ddsm:
        cache, labels, extra = ddsm_task(out, args.resolution)
        tasks = ["generic"]
        task_options = {"path_col": "file", "label_col": "dense", "patient_col": "patient"}
    else:
        cache, labels, tasks = Path(args.cache), Path(args.labels), args.tasks.split(",")
    pretrained, info = load_backbone(args.encoder)
    arch, patch = info.get("arch") or "tiny", int(info.get("patch_size") or 16)
    random_init, _ = load_backbone(random_init=True, arch=arch, patch_size=patch, seed=args.seed)
    feats = {}
    t0 = time.perf_counter()
    for name, model in (("pretrained", pretrained), ("random-init", random_init)):
        feats[name] = embed_cache(model, cache, resolution=args.resolution, progress=False, meta={"encoder": info})
    rows, timings = [], {"embed_s": round(time.perf_counter() - t0, 1)}
    for task in tasks:
        label = "ddsm-dense" if args.ddsm else task
        for name in ("pretrained", "random-init"):
            entries = run_probe(feats[name], task, labels,
                                ProbeOptions(label_fractions=[1.0], seed=args.seed, task_options=task_options,
                                             plots=False),
                                out=out / f"probe-{name}-{label}", log=lambda *_: None)
            for probe in ("logistic", "knn"):
                h = _headline(entries, probe)
                if h:
                    rows.append({"task": label, "method": f"{probe} probe, {name} encoder", **h})
        runs = [("pretrained", args.encoder, False)] + ([] if args.skip_random_finetune else [("random-init", None, True)])
        for name, enc, rand in runs:
            cfg = load_finetune_config("cpu-tiny", [f"data.resolution={args.resolution}", f"train.steps={args.steps}",
                                                    f"model.head={args.head}", f"train.seed={args.seed}"])
            t1 = time.perf_counter()
            res = finetune(enc, cache, [task], labels, out / f"finetune-{name}-{label}", cfg, random_init=rand,
                           arch=arch, patch_size=patch, progress=False, task_options=task_options, log=lambda *_: None)
            timings[f"finetune {name} {label} s"] = round(time.perf_counter() - t1, 1)
            h = _headline(res["entries"], "finetune")
            cal = res["summary"]["calibration"]
            rows.append({"task": label, "method": f"fine-tuned ({args.head} head), {name} encoder", **h,
                         "best_step": res["summary"]["early_stopping"].get("best_step"),
                         "ece_before": cal.get("test_ece_before"), "ece_after": cal.get("test_ece_after")})
    print(f"machine: {machine()}; threads {args.threads}")
    print(f"command: {' '.join(sys.argv)}")
    if extra:
        print(f"DDSM: {extra}")
    print("\n| task | method | AUC (image) | 95% CI | n test |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['method']} | {r['value']:.3f} | {r['ci_low']:.3f}-{r['ci_high']:.3f} | {r['n_test']} |")
    print("\n" + json.dumps(timings))
    (out / "table.json").write_text(json.dumps({"rows": rows, "timings": timings, "extra": extra,
                                                "machine": machine(), "argv": sys.argv}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
