"""The fine-tune's labelled set and split are probe's: same test patients, and validation
patients = those the logistic probe picks C on."""

import numpy as np
import pytest

from mammodino.errors import UserError
from mammodino.eval.embedding import embed_cache
from mammodino.models.loading import load_backbone
from mammodino.eval.join import compact_classes, join_labels
from mammodino.eval.splits import task_split, validation_split
from mammodino.eval.tasks import load_task
from mammodino.finetune.labels import load_labelled, make_splits


@pytest.mark.parametrize("task", ["phantom-lesion", "phantom-density"])
@pytest.mark.parametrize("seed", [0, 3])
def test_split_identity_with_probe(lesion_data, task, seed):
    cache, labels = lesion_data
    model, _ = load_backbone(random_init=True, arch="tiny", patch_size=16)
    fs = embed_cache(model, cache, resolution=32, progress=False)  # what `probe` would read
    joined = compact_classes(join_labels(fs, load_task(task, labels), cache))
    train, test, _ = task_split(joined, 0.3, seed, log=lambda *_: None)
    v_fit, v_val = validation_split(joined.groups[train], joined.y[train], seed=seed)

    ls = load_labelled(cache, [task], labels, log=lambda *_: None)
    sp = make_splits(ls, test_size=0.3, val_size=0.2, seed=seed, log=lambda *_: None)
    assert set(fs.id[joined.index[test]]) == {im.id for im in (ls.images[i] for i in sp.test)}
    assert set(fs.id[joined.index[train[v_val]]]) == {ls.images[i].id for i in sp.val}
    assert set(fs.id[joined.index[train[v_fit]]]) == {ls.images[i].id for i in sp.fit}
    # patients never straddle
    assert not set(ls.groups[sp.test]) & set(ls.groups[np.r_[sp.fit, sp.val]])
    assert not set(ls.groups[sp.val]) & set(ls.groups[sp.fit])


def test_label_fraction_keeps_a_patient_subset(lesion_data):
    cache, labels = lesion_data
    ls = load_labelled(cache, ["phantom-lesion"], labels, log=lambda *_: None)
    full = make_splits(ls, 0.3, 0.2, 0, 1.0, log=lambda *_: None)
    half = make_splits(ls, 0.3, 0.2, 0, 0.5, log=lambda *_: None)
    assert set(half.test) == set(full.test)
    assert len(set(ls.groups[np.r_[half.fit, half.val]])) < len(set(ls.groups[np.r_[full.fit, full.val]]))


def test_multilabel_from_several_binary_tasks(lesion_data, tmp_path):
    cache, labels = lesion_data
    # a second binary task in the same table: "dense" (C/D), empty for every fifth image
    import csv

    table = tmp_path / "labels.csv"
    with open(labels) as src, table.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        w = csv.DictWriter(dst, fieldnames=reader.fieldnames + ["dense"])
        w.writeheader()
        for i, r in enumerate(reader):
            w.writerow({**r, "dense": int(r["density"] in "CD") if i % 5 else ""})
    ls = load_labelled(cache, ["phantom-lesion", "generic"], table,
                       {"path_col": "image_id", "label_col": "dense", "patient_col": "patient_id"}, log=lambda *_: None)
    assert ls.multilabel and ls.y.shape == (64, 2) and ls.classes == ["lesion", "1"]
    assert (ls.y[:, 1] == -1).sum() == 64 // 5 + 1 and (ls.y[:, 0] >= 0).all()
    sp = make_splits(ls, 0.3, 0.2, 0, log=lambda *_: None)
    assert not set(ls.groups[sp.test]) & set(ls.groups[sp.fit])


def test_multiclass_tasks_cannot_be_combined(lesion_data):
    cache, labels = lesion_data
    with pytest.raises(UserError, match="combines binary tasks"):
        load_labelled(cache, ["phantom-lesion", "phantom-density"], labels, log=lambda *_: None)
