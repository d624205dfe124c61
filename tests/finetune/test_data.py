"""Fine-tuning inputs: the embed geometry, the token mask, a batch plan that is a pure
function of the step, class-balanced batches."""

import numpy as np
import pytest

from mammodino.data.cache import open_cache
from mammodino.eval.embedding import prepare_input
from mammodino.finetune.config import load_finetune_config
from mammodino.finetune.data import BatchPlan, FineTuneDataset, model_input, token_mask_for
from mammodino.finetune.labels import load_labelled


def test_token_mask_known_answer():
    # 64 px square, patch 16: a 64 x 30 image at the left edge covers columns 0-1 of 4
    m = token_mask_for(64, 16, (0, 0, 64, 30)).reshape(4, 4)
    assert m[:, :2].all() and not m[:, 2:].any()
    # centred vertically 40 px high (rows 12..52): patch rows 0..3 all overlap
    m = token_mask_for(64, 16, (12, 0, 40, 64)).reshape(4, 4)
    assert m.all()
    m = token_mask_for(64, 16, (20, 0, 24, 64)).reshape(4, 4)  # rows 20..44 -> patch rows 1, 2
    assert m[1:3].all() and not m[0].any() and not m[3].any()


def test_eval_input_is_exactly_the_embed_input(lesion_data):
    cache, _ = lesion_data
    img = open_cache(cache)[0].image()
    x, tm = model_input(img, 64, 16)
    assert np.array_equal(x, prepare_input(img, 64))
    assert tm.shape == (16,) and 0 < tm.sum() < 16  # the images are taller than wide: padding on the right


def test_training_crops_are_a_pure_function_of_seed_and_position(lesion_data):
    cache, labels = lesion_data
    cfg = load_finetune_config("cpu-tiny")
    ls = load_labelled(cache, ["phantom-lesion"], labels, log=lambda *_: None)
    a = FineTuneDataset(ls, 64, 16, cfg, train=True, seed=3)
    b = FineTuneDataset(ls, 64, 16, cfg, train=True, seed=3)
    s1, s2 = a[(17, 5)], b[(17, 5)]
    assert np.array_equal(s1["x"].numpy(), s2["x"].numpy())
    assert not np.array_equal(s1["x"].numpy(), a[(18, 5)]["x"].numpy())  # another position, another crop
    assert s1["x"].shape == (1, 64, 64) and int(s1["y"]) == int(ls.y[5])


@pytest.mark.parametrize("balance", ["sampler", "none"])
def test_batch_plan_is_a_pure_function_of_the_step(balance):
    rows = np.arange(100, 150)
    strata = (np.arange(50) < 5).astype(int)
    p1, p2 = BatchPlan(rows, strata, 8, seed=1, balance=balance), BatchPlan(rows, strata, 8, seed=1, balance=balance)
    for step in (0, 3, 7, 40):
        assert p1.batch_keys(step) == p2.batch_keys(step)
    assert [k[0] for k in p1.batch_keys(2)] == list(range(16, 24))
    assert p1.batch_keys(5) != BatchPlan(rows, strata, 8, seed=2, balance=balance).batch_keys(5)


def test_class_balanced_batches_see_rare_positives_half_the_time():
    rows = np.arange(200)
    strata = (rows < 4).astype(int)  # 2 % positives
    plan = BatchPlan(rows, strata, 32, seed=0, balance="sampler")
    picked = np.array([r for s in range(100) for _p, r in plan.batch_keys(s)])
    assert 0.45 < (picked < 4).mean() < 0.55


def test_unbalanced_plan_covers_every_row_once_per_epoch():
    rows = np.arange(10, 30)
    plan = BatchPlan(rows, np.zeros(20, int), 4, seed=0, balance="none")
    epoch = [r for s in range(5) for _p, r in plan.batch_keys(s)]
    assert sorted(epoch) == list(range(10, 30))
    assert [r for s in range(5, 10) for _p, r in plan.batch_keys(s)] != epoch  # a new permutation
