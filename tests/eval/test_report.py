"""The HTML report: sections, embedded images, missing parts, warnings, no patient ids."""

import json
import re

from mammodino.eval.report import SECTIONS, build_report, write_report


def test_empty_run_folder_notes_every_missing_part(tmp_path):
    page = build_report(tmp_path)
    for section in SECTIONS:
        assert f">{section}</h2>" in page
    assert page.count('class="missing"') >= 6 and "data:image/png" not in page


def test_full_run_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("model:\n  arch: tiny\nmonitor:\n  collapse_min_cls_std: 0.01\n")
    rows = [{"step": s, "loss": 10 - s / 10, "dino_loss": 5.0, "ibot_loss": 3.0, "koleo_loss": -0.2, "slice_loss": 1.0,
             "lr": 1e-3, "images_per_s": 7.5, "teacher_entropy": 5.0, "prototypes_in_use": 300.0,
             "cls_std": 0.001, "collapsed": s == 30} for s in (10, 20, 30)]
    rows.append({"step": 31, "skipped": "non-finite loss"})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken")
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    (tmp_path / "crop_preview.png").write_bytes(png)
    probe = tmp_path / "probe-x"
    probe.mkdir()
    entry = {"task": "phantom-lesion", "probe": "knn", "metric": "auc", "value": 0.8, "ci_low": 0.7, "ci_high": 0.9,
             "n_test": 10, "level": "image", "label_fraction": 1.0, "n_train": 30, "perturbation": None}
    (probe / "results.json").write_text(json.dumps([entry, dict(entry, perturbation="noise=0.02", value=0.6, drop=0.2)]))
    (probe / "summary.json").write_text(json.dumps({"classes": ["no", "yes"], "class_counts": [5, 5],
                                                    "labelled_images": 10, "patients": 4, "split": "by patient"}))
    (probe / "roc_phantom-lesion_knn.png").write_bytes(png)
    (tmp_path / "attention").mkdir()
    (tmp_path / "attention" / "a_attention.png").write_bytes(png)
    out = write_report(tmp_path)
    page = out.read_text()
    assert out == tmp_path / "report.html"
    assert page.count("data:image/png;base64,") == 3 + 3 + 3  # curves (loss, lr, img/s) + monitor + 3 PNGs
    assert "1 steps were skipped" in page and "Collapse warning at 1 logged steps" in page
    assert "below 0.01" in page and "noise=0.02" in page and "0.2" in page
    assert "10 labelled images from 4 patients" in page
    assert re.search(r"<td class=num>\[0\.7, 0\.9\]", page)


def test_learning_state_reads_the_dino_loss_against_ln_k():
    import math

    from mammodino.eval.report import learning_state

    k = 1024
    # 4 local crops: 10 pair terms, the logged global part is (sum of 2 pair CEs) / 10
    stuck = {"step": 300, "dino_global_loss": 2 * math.log(k) / 10, "teacher_sample_entropy": 0.98 * math.log(k)}
    state, ce, ent = learning_state(stuck, k, 4)
    assert state == "not learning" and abs(ce - 1.0) < 1e-9 and abs(ent - 0.98) < 1e-9
    learning = {"step": 300, "dino_global_loss": 2 * 0.3 * math.log(k) / 10, "teacher_sample_entropy": 0.2 * math.log(k)}
    assert learning_state(learning, k, 4)[0] == "learning"
    assert learning_state({"step": 1}, k, 4)[0] == "unknown"
