"""run_probe end to end on synthetic features: schema, fractions, breast level, privacy."""

import json

import numpy as np
import pytest
from eval_helpers import synthetic_features, write_label_csv

from mammodino.errors import UserError
from mammodino.eval import ProbeOptions, run_probe
from mammodino.eval.results import REQUIRED_KEYS, markdown_table, read_results, validate_entries

OPTS = dict(path_col="file", label_col="label", patient_col="patient")


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    fs, rows = synthetic_features(n_patients=120, shift=3.0)
    fs.save(tmp / "f.npz")
    labels = write_label_csv(tmp / "labels.csv", rows, extra_rows=[("ghost.png", 1, "patient-9999")])
    messages = []
    entries = run_probe(tmp / "f.npz", "generic", labels, ProbeOptions(task_options=OPTS, n_boot=200), out=tmp / "out",
                        log=messages.append)
    return tmp, entries, messages


def test_results_schema_and_files(probe_run):
    tmp, entries, _ = probe_run
    on_disk = read_results(tmp / "out" / "results.json")
    assert len(on_disk) == len(entries) == 2 * 2 * 3  # probes x levels x fractions
    for e in on_disk:
        assert all(k in e for k in REQUIRED_KEYS)
        assert e["ci_low"] <= e["value"] <= e["ci_high"]
        assert e["level"] in ("image", "breast") and e["metric"] == "auc"
    assert sorted({e["label_fraction"] for e in entries}) == [0.01, 0.1, 1.0]
    assert (tmp / "out" / "roc_generic_logistic.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp / "out" / "roc_generic_knn.png").exists()
    assert "| generic | logistic | image | 100% |" in (tmp / "out" / "results.md").read_text()


def test_separable_task_scores_high_and_fractions_grow_the_training_set(probe_run):
    _, entries, _ = probe_run
    full = [e for e in entries if e["label_fraction"] == 1.0]
    assert all(e["value"] > 0.95 for e in full if e["probe"] == "logistic")
    n_train = {e["label_fraction"]: e["n_train"] for e in entries}
    assert n_train[0.01] < n_train[0.1] < n_train[1.0]
    breast = [e for e in entries if e["level"] == "breast"]
    image = [e for e in entries if e["level"] == "image"]
    assert all(b["n_test"] * 2 == i["n_test"] for b, i in zip(breast, image))  # 2 views per breast


def test_unmatched_rows_are_reported_not_dropped(probe_run):
    tmp, _, messages = probe_run
    assert any("1 label rows have no image in the features; 0 features have no label" in m for m in messages)
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    assert summary["label_rows_without_image"] == 1 and summary["labelled_images"] == 480


def test_outputs_hold_no_patient_ids(probe_run):
    tmp, _, _ = probe_run
    for f in (tmp / "out").iterdir():
        if f.suffix in (".json", ".md"):
            assert "patient-0" not in f.read_text(), f.name


def test_noise_features_score_near_chance(tmp_path):
    fs, rows = synthetic_features(n_patients=200, shift=0.0, seed=5)
    labels = write_label_csv(tmp_path / "l.csv", rows)
    entries = run_probe(fs, "generic", labels, ProbeOptions(label_fractions="1", task_options=OPTS, n_boot=100),
                        log=lambda m: None)
    for e in entries:
        assert 0.3 < e["value"] < 0.7
        assert e["ci_low"] < 0.5 < e["ci_high"] or abs(e["value"] - 0.5) < 0.1


def test_table_split_is_honoured(tmp_path):
    fs, rows = synthetic_features(n_patients=60, shift=3.0)
    with (tmp_path / "l.csv").open("w") as fh:
        fh.write("file,label,patient,part\n")
        for stem, patient, _lat, _v, lab in rows:
            fh.write(f"{stem},{lab},{patient},{'test' if int(patient[-4:]) < 10 else 'training'}\n")
    entries = run_probe(fs, "generic", tmp_path / "l.csv",
                        ProbeOptions(label_fractions="1", n_boot=50, task_options=dict(OPTS, split_col="part")),
                        log=lambda m: None)
    img = [e for e in entries if e["level"] == "image"]
    assert all(e["n_test"] == 10 * 4 and e["split"] == "label table split column" for e in img)


def test_rare_class_fraction_is_skipped_with_a_message(tmp_path):
    fs, rows = synthetic_features(n_patients=40, shift=3.0, positive_rate=0.0)
    rows = [r[:4] + ((1 if r[1] in ("patient-0000", "patient-0001") and r[2] == "L" else 0),)
            for r in rows]
    labels = write_label_csv(tmp_path / "l.csv", rows)
    messages = []
    entries = run_probe(fs, "generic", labels, ProbeOptions(n_boot=50, task_options=OPTS), log=messages.append)
    assert {e["label_fraction"] for e in entries} == {1.0}
    assert any("skipped label fraction 0.01: class 1 has" in m for m in messages)


def test_one_class_is_a_clear_error(tmp_path):
    fs, rows = synthetic_features(n_patients=10, positive_rate=0.0)
    labels = write_label_csv(tmp_path / "l.csv", rows + [("x", "p", "L", "CC", 1)])
    with pytest.raises(UserError, match="a probe needs two"):
        run_probe(fs, "generic", labels, ProbeOptions(task_options=OPTS), log=lambda m: None)


def test_multiclass_task_reports_macro_auc_and_balanced_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    fs, rows = synthetic_features(n_patients=150, shift=0.0)
    cls = np.repeat(rng.integers(0, 3, 150), 4)
    fs.features[:, :3] += 3 * np.eye(3)[cls]
    rows = [r[:4] + (int(c),) for r, c in zip(rows, cls)]
    labels = write_label_csv(tmp_path / "l.csv", rows)
    entries = run_probe(fs, "generic", labels, ProbeOptions(label_fractions=[1.0], n_boot=100, task_options=OPTS),
                        out=tmp_path / "o", log=lambda m: None)
    metrics = {(e["probe"], e["level"], e["metric"]): e["value"] for e in entries}
    assert metrics[("logistic", "image", "macro_auc")] > 0.95
    assert metrics[("logistic", "image", "balanced_accuracy")] > 0.8
    assert (tmp_path / "o" / "roc_generic_logistic.png").exists()


def test_validate_entries_names_the_missing_key():
    with pytest.raises(ValueError, match="lacks ci_low"):
        validate_entries([{"task": "t", "probe": "p", "metric": "auc", "value": 1, "ci_high": 1, "n_test": 1,
                           "level": "image", "label_fraction": 1, "n_train": 1}])


def test_markdown_table_has_drop_column_for_perturbed_entries():
    base = {"task": "t", "probe": "knn", "metric": "auc", "value": 0.9, "ci_low": 0.8, "ci_high": 0.95,
            "n_test": 10, "level": "image", "label_fraction": 1.0, "n_train": 20}
    text = markdown_table([dict(base, perturbation=None), dict(base, value=0.7, perturbation="noise=0.02", drop=0.2)])
    assert "| drop |" in text.splitlines()[0] and "| noise=0.02 |" in text and "0.200" in text
