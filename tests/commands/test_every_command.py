"""Every subcommand of ``mammodino`` run once through the real CLI entry (``cli.main``), each on
the outputs of the ones before it, on phantoms the project generates:

  synth -> index -> qc / preview / pretrain (micro config) -> embed -> probe / attention / export
  -> finetune (on the export, with the cache and the synth labels) -> predict (on the DICOMs)
  -> report (of the run, with all of the above); and demo (sizes shrunk, micro config).

The chain runs once (module fixture); each test opens what one command wrote. A command added
to ``cli.COMMANDS`` without a step here fails ``test_every_command_is_exercised``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammodino import cli
from support.micro import MICRO
from finetune._helpers import MICRO_FT

FP32 = ["train.precision=fp32"]
N_FFDM, N_DBT = 48, 4  # 12 patients: enough for patient-level train / validation / test splits


class Chain:
    """Runs commands in order, keeps what each printed; a failing one stops the chain."""

    def __init__(self, root: Path):
        self.root = root
        self.ran: dict[str, list[dict]] = {}
        self.seconds: dict[str, float] = {}

    def __call__(self, *argv) -> dict:
        argv = [str(a) for a in argv]
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(argv)
        self.seconds[argv[0]] = self.seconds.get(argv[0], 0.0) + time.perf_counter() - t0
        result = {"argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue()}
        assert rc == 0, f"mammodino {' '.join(argv)} -> exit {rc}\nstdout:\n{result['out']}\nstderr:\n{result['err']}"
        self.ran.setdefault(argv[0], []).append(result)
        return result


def _tiny_sizes(minutes: float) -> dict:
    """The demo's phantom counts, shrunk (10 evaluation patients: both classes in the test split)."""
    return {"pretrain_ffdm": 8, "pretrain_dbt": 2, "eval_ffdm": 40, "eval_dbt": 2}


SMALL_SHAPES = {"ffdm_shape": (256, 200), "dbt_shape": (8, 128, 100)}  # the demo's phantoms, a quarter the pixels


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("every-command")
    run = Chain(root)
    src, cache, rd = root / "phantoms", root / "cache", root / "run"
    try:
        run("synth", src, "--n", N_FFDM, "--dbt", N_DBT, "--seed", 3, "--workers", 1, "--ffdm-size", "256x200",
            "--dbt-size", "8x128x100", "--quiet")  # = SMALL_SHAPES
        run("index", src, cache, "--size", 128, "--workers", 1, "--no-progress")
        run("qc", cache, "--out", root / "qc", "--src", src, "--sample", 4)
        run("preview", cache, "--out", root / "preview.png", "--n", 2, *MICRO)
        run("pretrain", *MICRO, *FP32, "--data", cache, "--out", rd, "--no-progress")
        run("embed", rd, cache, root / "features.npz", "--resolution", 64, "--batch", 16, "--device", "cpu",
            "--threads", 1, "--no-progress")
        run("probe", root / "features.npz", "--task", "phantom-lesion", "--labels", src / "labels.csv",
            "--label-fraction", "1", "--n-boot", 50, "--device", "cpu", "--out", rd / "probe-lesion")
        ids = _manifest_ids(cache)
        run("attention", rd, ids["ffdm"], ids["dbt"], "--cache", cache, "--resolution", 64, "--device", "cpu",
            "--out", rd / "attention")
        run("export", rd, root / "encoder")
        run("export", rd / "checkpoint-last.safetensors", root / "encoder-timm", "--timm")
        run("finetune", root / "encoder", cache, *MICRO_FT, "train.steps=4", *FP32, "--config", "cpu-tiny",
            "--task", "phantom-lesion", "--labels", src / "labels.csv", "--head", "linear", "--device", "cpu",
            "--threads", 1, "--no-progress", "--out", rd / "finetune-lesion")
        run("predict", rd / "finetune-lesion", src, "--out", root / "scores.csv", "--workers", 1,
            "--precision", "fp32", "--device", "cpu", "--threads", 1, "--no-progress")
        run("report", rd)
        with pytest.MonkeyPatch.context() as mp:
            import mammodino.demo
            import mammodino.synth.generate as generate

            mp.setattr(mammodino.demo, "plan_sizes", _tiny_sizes)
            mp.setattr(generate, "generate_phantoms", functools.partial(generate.generate_phantoms, **SMALL_SHAPES))
            run("demo", "--out", root / "demo", "--minutes", 0.5, "--workers", 1, "--no-progress", *MICRO, *FP32)
    finally:
        torch.set_num_threads(threads)
    yield run


def _manifest_ids(cache: Path) -> dict:
    with (cache / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    return {kind: next(r["id"] for r in rows if r["kind"] == kind) for kind in ("ffdm", "dbt")}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_command_is_exercised(chain):
    assert set(chain.ran) == set(cli.COMMANDS), sorted(set(cli.COMMANDS) ^ set(chain.ran))
    assert all(r["rc"] == 0 for runs in chain.ran.values() for r in runs)


def test_synth_writes_dicoms_and_labels(chain):
    src = chain.root / "phantoms"
    assert f"ready: {N_FFDM} FFDM images ({N_FFDM // 4} patients) and {N_DBT} DBT volumes" in chain.ran["synth"][0]["out"]
    assert len(list((src / "ffdm").glob("*.dcm"))) == N_FFDM and len(list((src / "dbt").glob("*.dcm"))) == N_DBT
    labels = _rows(src / "labels.csv")
    assert len(labels) == N_FFDM + N_DBT
    assert {r["lesion"] for r in labels} == {"0", "1"}


def test_index_writes_a_manifest_of_every_image(chain):
    cache = chain.root / "cache"
    rows = _rows(cache / "manifest.csv")
    assert len(rows) == N_FFDM + N_DBT and all(r["status"] == "ok" for r in rows)
    assert sum(r["kind"] == "dbt" for r in rows) == N_DBT
    for r in rows[:3]:
        img = np.load(cache / r["image_file"])
        assert max(img.shape[-2:]) <= 128 and img.dtype == np.uint16 and img.max() > 0
    assert f"{N_FFDM + N_DBT} ok, 0 skipped" in chain.ran["index"][0]["out"]
    assert (chain.root / "cache.mammodino-key").exists()


def test_qc_sheet(chain):
    qc = chain.root / "qc"
    page = (qc / "index.html").read_text()
    pngs = sorted(p.name for p in qc.glob("page-*.png"))
    assert pngs and all(f"src='{name}'" in page for name in pngs)
    order = _rows(qc / "sheet.csv")
    assert order and all(o["shown"] == "source" for o in order)
    Image.open(qc / pngs[0]).verify()


def test_preview_grid(chain):
    img = Image.open(chain.root / "preview.png")
    assert img.width > 100 and img.height > 100
    assert "wrote" in chain.ran["preview"][0]["out"] and "2 samples" in chain.ran["preview"][0]["out"]


def test_pretrain_run_folder(chain):
    rd = chain.root / "run"
    for name in ("checkpoint-last.safetensors", "metrics.jsonl", "config.yaml", "crop_preview.png", "loss_curve.png"):
        assert (rd / name).stat().st_size > 0, name
    steps = [json.loads(line) for line in (rd / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [s for s in steps if "loss" in s]
    assert [s["step"] for s in train] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(s["loss"]) for s in train)
    assert "done: step" in chain.ran["pretrain"][0]["out"]


def test_embed_features(chain):
    with np.load(chain.root / "features.npz", allow_pickle=False) as z:
        assert {"features", "id", "patient_key", "laterality", "view", "kind", "stem", "slice", "n_slices",
                "cache", "meta"} <= set(z.files)
        feats = z["features"]
        assert feats.shape[0] == N_FFDM + N_DBT and feats.dtype == np.float32 and np.isfinite(feats).all()
        assert set(z["kind"].tolist()) == {"ffdm", "dbt"}
        assert not any("PHANTOM" in k for k in z["patient_key"].tolist())  # pseudonymous keys only
        assert json.loads(str(z["meta"]))["input_size"] == 64


def test_probe_results(chain):
    d = chain.root / "run" / "probe-lesion"
    entries = json.loads((d / "results.json").read_text())
    assert {e["probe"] for e in entries} == {"logistic", "knn"}
    for e in entries:
        assert e["task"] == "phantom-lesion" and e["n_test"] > 0 and e["n_train"] > 0
        assert 0 <= e["value"] <= 1 and e["ci_low"] <= e["ci_high"]
    assert list(d.glob("roc_*.png")) and (d / "results.md").stat().st_size > 0
    assert json.loads((d / "summary.json").read_text())["labelled_images"] > 0


def test_attention_maps(chain):
    d = chain.root / "run" / "attention"
    stats = json.loads((d / "attention_stats.json").read_text())
    assert len(stats) == 2
    assert len(list(d.glob("*_attention.png"))) == 2 and len(list(d.glob("*_heads.png"))) == 2
    for s in stats:
        assert 0 <= s["attention_on_tissue"] <= 1


def test_export_loads_back(chain):
    import torch

    from mammodino.models.loading import load_backbone

    for name in ("encoder", "encoder-timm"):
        d = chain.root / name
        assert (d / "model.safetensors").stat().st_size > 0
        assert json.loads((d / "config.json").read_text())
    model, _info = load_backbone(chain.root / "encoder")
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 192) and torch.isfinite(out).all()  # tiny: the CLS token of width 192


def test_finetune_model(chain):
    d = chain.root / "run" / "finetune-lesion"
    for name in ("model.safetensors", "config.json", "results.json", "summary.json", "metrics.jsonl"):
        assert (d / name).stat().st_size > 0, name
    assert json.loads((d / "config.json").read_text())["format"].startswith("mammodino-finetuned")
    entries = json.loads((d / "results.json").read_text())
    assert any(e["task"] == "phantom-lesion" and e["level"] == "image" for e in entries)
    assert "| phantom-lesion | finetune | image |" in chain.ran["finetune"][0]["out"]


def test_predict_scores_the_dicoms(chain):
    rows = _rows(chain.root / "scores.csv")
    images = [r for r in rows if r["level"] == "image"]
    assert len(images) == N_FFDM + N_DBT and all(r["status"] == "ok" for r in images)
    assert {r["level"] for r in rows} == {"image", "breast", "exam"}
    p = [float(r[k]) for r in images for k in r if k.startswith("p_") and r[k] != ""]
    assert p and all(0 <= x <= 1 for x in p)
    assert f"scored {N_FFDM + N_DBT} images (0 skipped)" in chain.ran["predict"][0]["out"]


def test_report_page_has_every_section(chain):
    from mammodino.eval.report import is_mammodino_report

    page_path = chain.root / "run" / "report.html"
    assert is_mammodino_report(page_path)
    page = page_path.read_text()
    for section in ("Configuration", "Training curves", "Collapse monitor", "Crop preview", "Probe results",
                    "ROC curves", "Fine-tuning", "Attention maps"):
        assert f">{section}</h2>" in page, section
    assert "probe-lesion" in page and "finetune-lesion" in page
    assert "No probe results" not in page and "No fine-tunes" not in page and "No attention maps" not in page
    assert page.count("data:image/png;base64,") >= 5


def test_demo_end_to_end(chain):
    d = chain.root / "demo"
    summary = json.loads((d / "summary.json").read_text())
    assert set(summary["tasks"]) == {"phantom-lesion", "phantom-density"}
    for task in summary["tasks"].values():
        assert set(task) == {"pretrained", "random-init"}
        assert all(0 <= r["value"] <= 1 and r["n_test"] > 0 for r in task.values())
    assert summary["steps"] == 6  # the micro config's train.steps wins over the budget's
    assert Path(summary["report"]).stat().st_size > 0
    assert summary["attention_pngs"] and all(Path(p).exists() for p in summary["attention_pngs"])
    assert "| phantom-lesion | pretrained |" in chain.ran["demo"][0]["out"]
