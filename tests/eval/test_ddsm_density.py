"""The DDSM percent-density task: masks -> percent density, the median split, the Spearman score."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammodino.errors import UserError
from mammodino.eval.tasks import load_task
from mammodino.eval.tasks import ddsm_density as dd


def _fake_root(tmp_path: Path, fractions: list[float]) -> Path:
    """Masks with a known fibroglandular share (of 1000 breast pixels) plus background and muscle."""
    root = tmp_path / "ddsm"
    for i, f in enumerate(fractions):
        part = "test" if i == 0 else "train_valid"
        (root / part / "fgt_seg_labels").mkdir(parents=True, exist_ok=True)
        (root / part / "fgt_seg").mkdir(parents=True, exist_ok=True)
        lab = np.full((50, 40), 64, np.uint8)  # background
        flat = lab.reshape(-1)
        n_fib = int(round(1000 * f))
        flat[:n_fib] = 192
        flat[n_fib:1000] = 128
        flat[1000:1100] = 255  # pectoral muscle counts for neither
        stem = f"A_{i:04d}_1.RIGHT_MLO"
        cv2.imwrite(str(root / part / "fgt_seg_labels" / f"{stem}_LI.png"), lab)
        cv2.imwrite(str(root / part / "fgt_seg" / f"{stem}.png"), lab)
    return root


def test_percent_density_counts_fibroglandular_over_breast(tmp_path):
    root = _fake_root(tmp_path, [0.1, 0.25, 0.5, 0.8])
    pds = dd.percent_density(root)
    assert pds == pytest.approx({"A_0000_1.RIGHT_MLO": 0.1, "A_0001_1.RIGHT_MLO": 0.25,
                                 "A_0002_1.RIGHT_MLO": 0.5, "A_0003_1.RIGHT_MLO": 0.8})
    t = load_task("ddsm-percent-density", str(root))
    assert {r.key: r.label for r in t.rows} == {"A_0000_1.RIGHT_MLO": 0, "A_0001_1.RIGHT_MLO": 0,
                                                "A_0002_1.RIGHT_MLO": 1, "A_0003_1.RIGHT_MLO": 1}
    assert {r.patient for r in t.rows} == {"A_0000", "A_0001", "A_0002", "A_0003"}
    assert len(dd.images(root)) == 4


def test_absent_data_is_a_clear_error_and_available_says_so(tmp_path):
    assert not dd.available(tmp_path / "nothing")
    with pytest.raises(UserError, match="fgt_seg_labels"):
        load_task("ddsm-percent-density", str(tmp_path / "nothing"))


def test_spearman_score_separates_an_informative_feature_from_noise(tmp_path):
    rng = np.random.default_rng(0)
    fr = list(rng.uniform(0.05, 0.9, 40))
    root = _fake_root(tmp_path, fr)
    stems = [f"A_{i:04d}_1.RIGHT_MLO" for i in range(40)]
    pd = np.array([dd.percent_density(root)[s] for s in stems])
    good = np.c_[pd + 0.02 * rng.standard_normal(40), rng.standard_normal((40, 3))]
    groups = np.array([dd.patient_of(s) for s in stems])
    s = dd.spearman_of(good, pd, groups, n_boot=200)
    assert s["value"] > 0.9 and s["ci_low"] > 0.8 and s["n"] == 40
    noise = dd.spearman_of(rng.standard_normal((40, 4)), pd, groups, n_boot=200)
    assert noise["value"] < 0.5 and noise["ci_low"] < 0.2 < s["ci_low"]


def test_spearman_score_joins_a_feature_set_to_the_masks_and_refuses_the_old_call(tmp_path):
    """The ablation's DDSM pass: a FeatureSet (here matched by file stem: no cache at hand)
    in, the Spearman of its films out; the old call shape (features, stems, root) once reached
    ``_root`` with an array and crashed there, now it is a clear TypeError."""
    from mammodino.eval.features import FeatureSet

    rng = np.random.default_rng(1)
    root = _fake_root(tmp_path, list(rng.uniform(0.05, 0.9, 30)))
    pds = dd.percent_density(root)
    stems = list(pds)[::-1] + ["not_a_ddsm_film"]  # order differs from the masks; one film has none
    pd = np.array([pds.get(s, 0.5) for s in stems])
    n = len(stems)
    fs = FeatureSet(features=np.c_[pd + 0.02 * rng.standard_normal(n), rng.standard_normal((n, 3))].astype(np.float32),
                    id=np.array([f"{i:016x}" for i in range(n)]), patient_key=np.array([""] * n),
                    laterality=np.array(["R"] * n), view=np.array(["MLO"] * n), kind=np.array(["ffdm"] * n),
                    stem=np.array(stems), slice=np.full(n, -1), n_slices=np.ones(n, dtype=np.int64))
    s = dd.spearman_score(fs, root, n_boot=100)
    assert s["n"] == 30 and s["value"] > 0.9
    with pytest.raises(TypeError, match="FeatureSet"):
        dd.spearman_score(fs.features, fs.stem, root)
    with pytest.raises(TypeError, match="must be a path"):
        dd.percent_density(fs.features)


def test_real_ddsm_masks(shared_data):
    root = shared_data / "ddsm_tissue"
    if not dd.available(root):
        pytest.skip(f"{root} absent")
    pds = dd.percent_density(root)
    assert len(pds) == 66
    v = np.array(list(pds.values()))
    assert 0.0 < v.min() < 0.2 and 0.5 < v.max() < 1.0  # fatty to dense films
    t = load_task("ddsm-percent-density", str(root))
    assert sum(r.label for r in t.rows) == 33
