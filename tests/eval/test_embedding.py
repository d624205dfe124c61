"""Embedding a cache with a frozen encoder: geometry, rows, determinism, NPZ round trip."""

import numpy as np
import pytest
import torch

from mammodino.errors import UserError
from mammodino.eval.embedding import embed_cache, fit_to_square, input_size, pad_to_square
from mammodino.eval.features import load_features
from mammodino.eval.perturb import Perturbation, parse_perturbations
from mammodino.models.loading import load_backbone


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)
    model, info = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=0)
    return model, info


def test_square_geometry_keeps_aspect_and_pads_right_and_around():
    img = np.ones((100, 50), np.float32)
    resized, place = fit_to_square(img, 64)
    assert resized.shape == (64, 32) and place == (0, 0, 64, 32)
    sq = pad_to_square(resized, 64, place)
    assert sq[:, :32].min() > 0.999 and sq[:, 32:].max() == 0  # chest wall stays at the left edge
    wide = fit_to_square(np.ones((50, 100), np.float32), 64)[1]
    assert wide == (16, 0, 32, 64)  # centred vertically
    assert input_size(224, 14) == 224 and input_size(230, 16) == 240


def test_random_init_is_reproducible(tiny_model):
    other, _ = load_backbone(random_init=True, arch="tiny", patch_size=16, seed=0)
    a = dict(tiny_model[0].named_parameters())
    assert all(torch.equal(p, a[n]) for n, p in other.named_parameters())


def test_embed_gives_one_finite_row_per_ok_image(tiny_cache, tiny_model, tmp_path):
    model, info = tiny_model
    fs = embed_cache(model, tiny_cache, resolution=64, batch_size=5, progress=False, meta={"encoder": info})
    assert len(fs) == 8 * 4 + 1 and fs.features.shape == (33, 2 * 192)
    assert np.isfinite(fs.features).all()
    assert "bad" not in fs.stem.tolist()  # the skipped manifest row is not embedded
    dbt = fs.kind == "dbt"
    assert fs.slice[dbt].tolist() == [2] and fs.n_slices[dbt].tolist() == [5] and (fs.slice[~dbt] == -1).all()
    fs.save(tmp_path / "f.npz")
    back = load_features(tmp_path / "f.npz")
    assert np.array_equal(back.features, fs.features) and back.stem.tolist() == fs.stem.tolist()
    assert back.meta["encoder"]["source"] == "random-init" and back.cache == fs.cache
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:  # no pickled objects inside
        assert {"features", "id", "patient_key", "laterality", "view", "kind", "stem", "slice", "cache"} <= set(z.files)


def test_batch_size_does_not_change_features(tiny_cache, tiny_model):
    model, _ = tiny_model
    a = embed_cache(model, tiny_cache, resolution=64, batch_size=1, progress=False)
    b = embed_cache(model, tiny_cache, resolution=64, batch_size=16, progress=False)
    assert np.allclose(a.features, b.features, atol=1e-4)


def test_last4_ends_with_the_final_features_and_all_slices(tiny_cache, tiny_model):
    model, _ = tiny_model
    base = embed_cache(model, tiny_cache, resolution=64, progress=False)
    four = embed_cache(model, tiny_cache, resolution=64, last4=True, dbt_slices="all", progress=False)
    assert four.features.shape[1] == 8 * 192 and len(four) == 32 + 5
    assert four.slice[four.kind == "dbt"].tolist() == [0, 1, 2, 3, 4]
    ffdm = four.kind == "ffdm"
    assert np.allclose(four.features[ffdm][:, -384:], base.features[base.kind == "ffdm"], atol=1e-4)
    assert four.image_level_mask().sum() == 33


def test_perturbations_change_the_input_deterministically():
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    noise = Perturbation("noise", 0.05)
    assert np.array_equal(noise.apply(img, "a"), noise.apply(img, "a"))
    assert not np.array_equal(noise.apply(img, "a"), noise.apply(img, "b"))
    assert 0.03 < float(np.std(noise.apply(img, "a") - img)) < 0.06
    low = Perturbation("resolution", 0.25).apply(img)
    assert low.shape == img.shape and np.abs(np.diff(low, axis=1)).mean() < np.abs(np.diff(img, axis=1)).mean()
    assert [p.label for p in parse_perturbations("resolution=0.5, noise=0.02")] == ["resolution=0.5", "noise=0.02"]
    for bad in ("blur=1", "resolution=2", "noise=-1", "noise"):
        with pytest.raises(UserError):
            parse_perturbations(bad)
