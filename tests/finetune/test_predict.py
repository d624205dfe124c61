"""predict: the round trip finetune -> predict -> the model's own probabilities; raw folders
through the indexer with a row and a reason for every bad file; no raw ids in the CSV."""

import csv
import shutil

import numpy as np
import pytest
import torch

from mammodino.errors import UserError
from mammodino.finetune.config import load_finetune_config
from mammodino.finetune.predict import class_columns, predict, prediction_rows
from mammodino.finetune.trainer import FineTuner

from ._helpers import MICRO_FT, RANDOM_TINY


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tuned(lesion_data, tmp_path_factory):
    cache, labels = lesion_data
    out = tmp_path_factory.mktemp("ftp") / "model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_finetune_config("cpu-tiny", MICRO_FT + ["train.steps=4", "train.eval_every=2"])
    tuner = FineTuner(None, cache, ["phantom-lesion"], labels, out, cfg, progress=False, log=lambda *_: None,
                      **RANDOM_TINY)
    try:
        tuner.run()
    finally:
        tuner.folder.close()
        torch.set_num_threads(threads)
    return tuner, out


def test_round_trip_gives_the_probabilities_of_the_model_in_memory(tuned, lesion_data, tmp_path):
    tuner, model_dir = tuned
    cache, _ = lesion_data
    summary = predict(model_dir, cache, tmp_path / "scores.csv", progress=False, device="cpu")
    rows = _read(tmp_path / "scores.csv")
    images = [r for r in rows if r["level"] == "image"]
    assert summary["images"] == len(images) == 64 and summary["skipped"] == 0
    model = tuner.model.eval()
    by_id = {r["id"]: r for r in images}
    ids = [tuner.ls.images[i].id for i in range(len(tuner.ls))]
    batch = [tuner.eval_set[i] for i in range(len(tuner.ls))]
    with torch.no_grad():
        p = model.probabilities(torch.stack([b["x"] for b in batch]), torch.stack([b["token_mask"] for b in batch]))
    got = np.array([[float(by_id[i]["p_no_lesion"]), float(by_id[i]["p_lesion"])] for i in ids])
    assert np.abs(got - p.double().numpy()).max() < 1e-6  # the CSV keeps 6 decimals
    breasts = [r for r in rows if r["level"] == "breast"]
    exams = [r for r in rows if r["level"] == "exam"]
    assert len(breasts) == 32 and all(r["n_images"] == "2" for r in breasts)
    assert len(exams) == 16 and all(r["n_images"] == "4" for r in exams)


def test_breast_mean_and_exam_max_known_answer():
    class Im:
        def __init__(self, i, pk, lat):
            self.row = {"id": i, "patient_key": pk, "study_key": "s" + pk, "laterality": lat, "view": "CC", "kind": "ffdm"}

    images = [Im("a", "p1", "L"), Im("b", "p1", "L"), Im("c", "p1", "R"), Im("d", "", "")]
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.8, 0.2], [0.4, 0.6]])
    header, rows = prediction_rows(images, probs, ["no", "yes"], False,
                                   skipped=[{"id": "e", "status": "skipped", "reason": "not an image"}])
    assert header[-2:] == ["p_no", "p_yes"]
    by = {(r["level"], r.get("patient_key"), r.get("laterality")): r for r in rows}
    assert float(by[("breast", "p1", "L")]["p_yes"]) == pytest.approx(0.3)
    assert float(by[("exam", "p1", None)]["p_yes"]) == pytest.approx(0.3)  # the most suspicious breast
    assert float(by[("exam", "p1", None)]["p_no"]) == pytest.approx(0.7)
    assert by[("exam", "p1", None)]["study_key"] == "sp1"
    assert float(by[("breast", "", "")]["p_yes"]) == pytest.approx(0.6)  # no patient: the image is its own breast
    assert [r["reason"] for r in rows if r["status"] == "skipped"] == ["not an image"]
    _h, rows_mc = prediction_rows(images[:3], np.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]]),
                                  ["a", "b", "c"], False)
    exam = next(r for r in rows_mc if r["level"] == "exam")
    assert float(exam["p_c"]) == pytest.approx((0.35 + 0.8) / 2)  # multi-class: mean of the breasts
    _h, rows_mean = prediction_rows(images[:3], probs[:3], ["no", "yes"], False, exam_score="mean")
    exam = next(r for r in rows_mean if r["level"] == "exam")
    assert float(exam["p_yes"]) == pytest.approx((0.3 + 0.2) / 2)  # the mean over the breasts, on request


def test_class_columns_are_safe_and_unique():
    assert class_columns(["no lesion", "Lesion!", "lesion"]) == ["p_no_lesion", "p_lesion", "p_lesion_"]


def test_raw_folder_with_bad_files_gives_rows_with_reasons(tuned, phantom_dir, dicom_headers_dir, tmp_path):
    _tuner, model_dir = tuned
    src = tmp_path / "src"
    shutil.copytree(phantom_dir / "ffdm", src / "ffdm")
    shutil.copytree(phantom_dir / "dbt", src / "dbt")  # multi-frame DBT: scored on the middle slice
    for f in sorted(dicom_headers_dir.glob("*.dcm")):
        shutil.copy(f, src / f.name)
    (src / "truncated.dcm").write_bytes((phantom_dir / "ffdm").glob("*.dcm").__next__().read_bytes()[:3000])
    out = tmp_path / "scores.csv"
    s = predict(model_dir, src, out, progress=False, device="cpu", keep_source=False)
    rows = _read(out)
    images = [r for r in rows if r["level"] == "image"]
    ok = [r for r in images if r["status"] == "ok"]
    bad = [r for r in images if r["status"] == "skipped"]
    assert len(ok) == 14 and s["images"] == 14 and {r["kind"] for r in ok} == {"ffdm", "dbt"}
    assert len(bad) == 6 and all(r["reason"] and r["p_lesion"] == "" for r in bad)
    assert any("FOR PROCESSING" in r["reason"] for r in bad)
    assert all(0.0 <= float(r["p_lesion"]) <= 1.0 for r in ok)
    assert {r["laterality"] for r in ok} == {"L", "R"}
    text = out.read_text()
    raw_ids = {r["patient_id"] for r in _read(phantom_dir / "labels.csv")}
    assert "source" not in rows[0] and not any(pid in text for pid in raw_ids) and "PHANTOM^" not in text
    assert ".dcm" not in text and "ffdm/" not in text
    with pytest.raises(UserError, match="already exists"):
        predict(model_dir, src, out, progress=False, device="cpu")
    s2 = predict(model_dir, src, tmp_path / "with-source.csv", progress=False, device="cpu", keep_source=True,
                 cache_dir=tmp_path / "kept")
    assert {r["source"] for r in _read(tmp_path / "with-source.csv") if r["level"] == "image"} >= {"truncated.dcm"}
    assert (tmp_path / "kept" / "manifest.csv").exists() and s2["images"] == 14


def test_a_raw_folder_scores_like_its_index(tuned, phantom_dir, tmp_path):
    """predict on raw DICOMs = index (at the model's cache size) + predict on that cache; with the
    same --salt the ids agree too."""
    from mammodino.data.indexer import index_folder

    _tuner, model_dir = tuned
    size = json_size(model_dir)
    index_folder(phantom_dir, tmp_path / "cache", size=size, workers=1, salt="s" * 16, progress=False)
    predict(model_dir, tmp_path / "cache", tmp_path / "a.csv", progress=False, device="cpu")
    predict(model_dir, phantom_dir, tmp_path / "b.csv", progress=False, device="cpu", salt="s" * 16, workers=2)
    def rows(name):  # manifest order is completion order with 2 workers
        return sorted(tuple(r.values()) for r in _read(tmp_path / name))

    a, b = rows("a.csv"), rows("b.csv")
    assert sum(r[0] == "image" for r in a) == 14 and {r[0] for r in a} == {"image", "breast", "exam"}
    assert a == b  # ids, keys and every probability


def json_size(model_dir) -> int:
    import json

    return int(json.loads((model_dir / "config.json").read_text())["preprocessing"]["cache_long_side"])
