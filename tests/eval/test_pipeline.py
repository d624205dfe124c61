"""The evaluation commands end to end on the phantom cache (real DICOMs through the indexer):
embed -> probe (+ perturbation) -> attention -> report, through the CLI."""

import json

import numpy as np
import pytest
import torch

from mammodino.cli import main
from mammodino.eval.features import load_features
from mammodino.eval.join import join_labels
from mammodino.eval.tasks import load_task

TINY = ["--random-init", "--arch", "tiny", "--patch-size", "16"]


@pytest.fixture(scope="module")
def embedded(phantom_cache, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("embed")
    assert main(["embed", *TINY, str(phantom_cache), str(out / "f.npz"), "--resolution", "64", "--no-progress",
                 "--threads", "1"]) == 0
    return out / "f.npz"


def test_embed_phantom_cache_one_finite_row_per_ok_image(embedded, phantom_cache):
    from mammodino.data.cache import read_manifest

    fs = load_features(embedded)
    ok = read_manifest(phantom_cache)
    assert len(fs) == len(ok) == 14 and sorted(fs.id) == sorted(r["id"] for r in ok)
    assert fs.features.shape[1] == 384 and np.isfinite(fs.features).all()
    assert set(fs.kind) == {"ffdm", "dbt"} and fs.meta["encoder"]["source"] == "random-init"
    raw = embedded.read_bytes()
    assert b"PHANTOM-0" not in raw  # raw patient ids never reach the features file


def test_probe_cli_with_perturbation_then_report(embedded, phantom_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    probe_dir = run / "probe-lesion"
    rc = main(["probe", str(embedded), "--task", "phantom-lesion", "--labels", str(phantom_dir / "labels.csv"),
               "--out", str(probe_dir), "--n-boot", "50", "--perturb", "resolution=0.5,noise=0.05"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| drop |" in printed.splitlines()[0] and "resolution=0.5" in printed
    entries = json.loads((probe_dir / "results.json").read_text())
    clean = [e for e in entries if e["perturbation"] is None]
    noisy = [e for e in entries if e["perturbation"] == "noise=0.05"]
    assert clean and len(noisy) == len([e for e in clean if e["label_fraction"] == 1.0])
    for e in noisy:
        assert e["drop"] is not None and e["n_test"] == next(
            c["n_test"] for c in clean if (c["probe"], c["level"]) == (e["probe"], e["level"]) and c["label_fraction"] == 1.0)
    assert main(["attention", *TINY, "ffdm_000000", "--cache", str(main_cache(embedded)), "--out", str(run / "attention"),
                 "--resolution", "64"]) == 0
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "lr": 0.1}) + "\n")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    for section in ("Configuration", "Training curves", "Collapse monitor", "Probe results", "ROC curves",
                    "Attention maps"):
        assert f">{section}</h2>" in page
    assert page.count("data:image/png;base64,") >= 4  # loss plot, 2 ROC curves, attention maps
    assert "PHANTOM-0" not in page and "No config.yaml" in page


def main_cache(features_path):
    return load_features(features_path).cache


def test_dbt_slice_task_labels_every_slice(phantom_cache, phantom_dir, tmp_path):
    assert main(["embed", *TINY, str(phantom_cache), str(tmp_path / "s.npz"), "--resolution", "32",
                 "--dbt-slices", "all", "--no-progress", "--threads", "1"]) == 0
    fs = load_features(tmp_path / "s.npz")
    table = load_task("phantom-dbt-slice-lesion", phantom_dir / "labels.csv")
    joined = join_labels(fs, table)
    from mammodino.data.cache import read_manifest

    n_slices = sum(r["slices"] for r in read_manifest(phantom_cache) if r["kind"] == "dbt")
    assert n_slices > 2 and len(joined) == int((fs.kind == "dbt").sum()) == n_slices
    lesion = next(r for r in table.rows if r.label == 1)
    z0, z1 = lesion.slice_range
    assert int(joined.y.sum()) == z1 - z0 + 1
    image_level = join_labels(fs, load_task("phantom-lesion", phantom_dir / "labels.csv"))
    assert len(image_level) == 14  # DBT volumes count once (middle slice)


def test_perturb_runs_on_demo_made_features(phantom_cache, phantom_dir, tmp_path):
    """The demo's path end to end: its random-init baseline embedded with the encoder description
    the demo stores, then `probe --perturb` rebuilds that same encoder (this crashed before, when
    the demo stored the encoder as a bare name)."""
    from mammodino.config import load_config
    from mammodino.demo import random_init_encoder
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.loading import load_backbone

    torch.set_num_threads(1)
    cfg = load_config("cpu-tiny", [])
    model, info = random_init_encoder(cfg, seed=3)
    rebuilt, _ = load_backbone(random_init=True, **{k: v for k, v in info.items() if k != "source"})
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k  # the stored description rebuilds the same weights
    fs = embed_cache(model, phantom_cache, resolution=64, progress=False, meta={"encoder": info})
    feats = tmp_path / "features-random-init.npz"
    fs.save(feats)
    out = tmp_path / "probe"
    assert main(["probe", str(feats), "--task", "phantom-lesion", "--labels", str(phantom_dir / "labels.csv"),
                 "--out", str(out), "--n-boot", "20", "--perturb", "noise=0.05"]) == 0
    noisy = [e for e in json.loads((out / "results.json").read_text()) if e["perturbation"] == "noise=0.05"]
    assert noisy and all(e["drop"] is not None for e in noisy)
