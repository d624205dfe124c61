"""finetune end to end on a micro config: outputs, what trains in each mode, exact resume."""

import json

import numpy as np
import pytest
import torch

from mammodino.errors import UserError
from mammodino.eval.results import read_results
from mammodino.finetune.config import load_finetune_config
from mammodino.finetune.model import load_finetuned
from mammodino.finetune.trainer import FineTuner, finetune
from mammodino.train.checkpoint import load_checkpoint

from ._helpers import MICRO_FT, RANDOM_TINY


def _quiet(*_a):
    pass


def _run(lesion_data, out, overrides=(), **kw):
    cache, labels = lesion_data
    cfg = load_finetune_config("cpu-tiny", MICRO_FT + list(overrides))
    tuner = FineTuner(None, cache, ["phantom-lesion"], labels, out, cfg, progress=False, log=_quiet,
                      **{**RANDOM_TINY, **kw})
    try:
        result = tuner.run()
    finally:
        tuner.folder.close()
    return tuner, result


@pytest.fixture(scope="module")
def finished(lesion_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every test here (conftest): the reference must use the same reduction order
    torch.use_deterministic_algorithms(True)
    try:
        return _run(lesion_data, out), out
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)


def test_outputs_and_results_have_probes_fields(finished):
    (tuner, result), out = finished
    for name in ("model.safetensors", "config.json", "results.json", "results.md", "summary.json", "metrics.jsonl",
                 "config.yaml", "checkpoint-last.safetensors", "best.safetensors", "training_curve.png",
                 "roc_phantom-lesion_finetune.png"):
        assert (out / name).is_file(), name
    entries = read_results(out / "results.json")  # probe's validation of the format
    assert {(e["level"], e["metric"]) for e in entries} == {("image", "auc"), ("breast", "auc")}
    e = entries[0]
    assert e["probe"] == "finetune" and e["head"] == "attention" and e["task"] == "phantom-lesion"
    assert e["n_test"] == len(tuner.splits.test) and e["ci_low"] <= e["value"] <= e["ci_high"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calibration"]["fitted"] and summary["early_stopping"]["best_step"] in (3, 6)
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["no lesion", "lesion"] and config["preprocessing"]["input_size"] == 64
    text = "".join(p.read_text(errors="replace") for p in out.glob("*.json")) + (out / "metrics.jsonl").read_text()
    assert "MRN-" not in text  # the label table's raw patient ids never reach an output


def test_the_saved_model_gives_the_probabilities_of_the_model_in_memory(finished):
    (tuner, _), out = finished
    model, config = load_finetuned(out)
    x = torch.stack([tuner.eval_set[i]["x"] for i in tuner.splits.test[:6]])
    tm = torch.stack([tuner.eval_set[i]["token_mask"] for i in tuner.splits.test[:6]])
    tuner.model.eval()
    with torch.no_grad():
        a, b = tuner.model.probabilities(x, tm), model.probabilities(x, tm)
    assert torch.equal(a, b)
    assert config["calibration"]["temperature"] == pytest.approx(model.temperature.tolist())
    # best.safetensors holds the weights that were kept
    best, _ = load_checkpoint(out / "best.safetensors")
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items() if k in best and "temperature" not in k
               and k != "bias")


def _same_state(a_path, b_path):
    a, _ = load_checkpoint(a_path)
    b, _ = load_checkpoint(b_path)
    assert sorted(a) == sorted(b)
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, bad[:5]


@pytest.mark.parametrize("stop", [1, 3])
def test_stop_and_resume_ends_with_the_uninterrupted_weights(lesion_data, finished, tmp_path, stop):
    (_tuner, _), ref = finished
    out = tmp_path / "run"
    torch.use_deterministic_algorithms(True)
    try:
        _t, r = _run(lesion_data, out, stop_at=stop)
        assert r == {"stopped_at": stop}
        with pytest.raises(UserError, match="pass --resume"):
            _run(lesion_data, out)
        _run(lesion_data, out, resume=True)
    finally:
        torch.use_deterministic_algorithms(False)
    _same_state(ref / "checkpoint-last.safetensors", out / "checkpoint-last.safetensors")
    _same_state(ref / "model.safetensors", out / "model.safetensors")
    assert read_results(ref / "results.json") == read_results(out / "results.json")


def test_resume_refuses_a_changed_experiment(lesion_data, tmp_path):
    out = tmp_path / "run"
    _run(lesion_data, out, stop_at=2)
    with pytest.raises(UserError, match="optim.lr"):
        _run(lesion_data, out, ["optim.lr=0.01"], resume=True)


def test_resume_refuses_other_inputs_and_logs_validation_settings(lesion_data, tmp_path):
    out = tmp_path / "run"
    _run(lesion_data, out, stop_at=2)
    with pytest.raises(UserError, match=r"--label-fraction: 1.0 -> 0.5"):
        _run(lesion_data, out, resume=True, label_fraction=0.5, stop_at=3)
    logged = []
    tuner = FineTuner(None, lesion_data[0], ["phantom-lesion"], lesion_data[1], out,
                      load_finetune_config("cpu-tiny", MICRO_FT + ["train.eval_every=2", "train.patience=9"]),
                      progress=False, log=logged.append, resume=True, stop_at=3, **RANDOM_TINY)
    try:
        tuner.run()
    finally:
        tuner.folder.close()
    text = "\n".join(map(str, logged))
    assert "train.eval_every" in text and "train.patience" in text and "--allow-config-change" not in text


@pytest.mark.parametrize("mode", ["frozen", "partial"])
def test_what_trains_in_each_mode(lesion_data, tmp_path, mode):
    cache, labels = lesion_data
    cfg = load_finetune_config("cpu-tiny", MICRO_FT + [f"finetune.mode={mode}", "finetune.unfreeze_blocks=2",
                                                       "finetune.warm_start_fraction=0", "model.head=linear"])
    tuner = FineTuner(None, cache, ["phantom-lesion"], labels, tmp_path / "r", cfg, progress=False, log=_quiet,
                      **RANDOM_TINY)
    try:
        tuner.run()
    finally:
        tuner.folder.close()
    from mammodino.models.loading import load_backbone

    init, _ = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=0)
    after = tuner.model.backbone.state_dict()
    changed = {k for k, v in init.state_dict().items() if not torch.equal(v, after[k])}
    if mode == "frozen":
        assert changed == set()
    else:
        assert changed and all(k.startswith(("blocks.10.", "blocks.11.", "norm.")) for k in changed)


def test_warm_start_trains_the_head_alone(lesion_data, tmp_path):
    cache, labels = lesion_data
    cfg = load_finetune_config("cpu-tiny", MICRO_FT + ["finetune.warm_start_fraction=0.5", "train.patience=0"])
    from mammodino.models.loading import load_backbone

    init, _ = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=0)
    out = tmp_path / "r"
    tuner = FineTuner(None, cache, ["phantom-lesion"], labels, out, cfg, progress=False, log=_quiet, stop_at=3,
                      **RANDOM_TINY)
    try:
        tuner.run()
    finally:
        tuner.folder.close()
    assert all(torch.equal(v, tuner.model.backbone.state_dict()[k]) for k, v in init.state_dict().items())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["backbone_trained"] for r in rows if "backbone_trained" in r] == [False, False, False]


def test_multilabel_and_weighted_loss_run_end_to_end(lesion_data, tmp_path):
    cache, labels = lesion_data
    import csv

    table = tmp_path / "labels.csv"
    with open(labels) as src, table.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        w = csv.DictWriter(dst, fieldnames=reader.fieldnames + ["dense"])
        w.writeheader()
        for r in reader:
            w.writerow({**r, "dense": int(r["density"] in "CD")})
    cfg = load_finetune_config("cpu-tiny", MICRO_FT + ["data.balance=loss", "train.steps=3", "model.head=linear"])
    result = finetune(None, cache, "phantom-lesion,generic", table, tmp_path / "r", cfg, progress=False, log=_quiet,
                      task_options={"path_col": "image_id", "label_col": "dense", "patient_col": "patient_id"},
                      **RANDOM_TINY)
    assert {e["task"] for e in result["entries"]} == {"phantom-lesion", "generic"}
    model, config = load_finetuned(tmp_path / "r")
    assert model.multilabel and config["classes"] == ["lesion", "1"]
    assert np.isfinite([e["value"] for e in result["entries"]]).all()


def test_report_has_a_finetune_section_beside_the_probe(finished, lesion_data, tmp_path):
    from mammodino.eval.embedding import embed_cache
    from mammodino.models.loading import load_backbone
    from mammodino.eval.probing import ProbeOptions, run_probe
    from mammodino.eval.report import build_report

    (_tuner, _), out = finished
    cache, labels = lesion_data
    model, _ = load_backbone(random_init=True, arch="tiny", patch_size=16)
    fs = embed_cache(model, cache, resolution=64, progress=False)
    run_probe(fs, "phantom-lesion", labels, ProbeOptions(label_fractions=[1.0], n_boot=50, plots=False),
              out=tmp_path / "probe-lesion", log=_quiet)
    page = build_report(tmp_path, finetune_dirs=[out])
    section = page[page.index(">Fine-tuning</h2>"):page.index(">Attention maps</h2>")]
    assert "Fine-tuned vs probes" in section and f"logistic probe: {tmp_path.name}/probe-lesion" in section
    assert "fine-tuned (attention head, random-init)" in section and "test ECE" in section
    assert section.count("data:image/png;base64,") == 2  # ROC + training curve
    assert ">Fine-tuning</h2>" in build_report(tmp_path) and "No fine-tunes" in build_report(tmp_path)
    # a folder of probes passed as --finetune is not mistaken for fine-tunes
    assert "No fine-tunes" in build_report(tmp_path, finetune_dirs=[tmp_path])


def test_bf16_autocast_path_runs(lesion_data, tmp_path):
    """The GPU path's bf16 autocast, exercised on CPU (train.precision=bf16)."""
    tuner, result = _run(lesion_data, tmp_path / "r", ["train.precision=bf16", "train.steps=2", "train.eval_every=2"])
    assert np.isfinite([e["value"] for e in result["entries"]]).all()
    assert all(torch.isfinite(v).all() for v in tuner.model.state_dict().values())


def test_a_tiny_validation_split_is_not_used_for_calibration(lesion_data, tmp_path):
    tuner, result = _run(lesion_data, tmp_path / "r", ["eval.calibration_min_images=30", "train.steps=2"])
    cal = result["summary"]["calibration"]
    assert not cal["fitted"] and "< eval.calibration_min_images = 30" in cal["reason"]
    assert float(tuner.model.temperature) == 1.0 and float(tuner.model.bias.abs().sum()) == 0.0
