"""Breast mask on synthetic images with known geometry: labels dropped, tails trimmed, noise,
orientation, no-tissue refusals, pectoral removal."""

import numpy as np
import pytest

from mammodino.errors import SkipFile
from mammodino.tissue.orientation import chest_wall_on_left, laterality_from_mask
from mammodino.tissue.segmentation import background_level, breast_box, breast_mask, segment, tissue_fraction
from support.film_phantoms import FATTY_FILM_BOX, fatty_film


def _phantom(h=400, w=300, seed=0, background=0.0, noise=0.0, label=True):
    """Half ellipse against the left edge (rows 60..340, up to x=210) with texture, plus a
    burned-in label block near the right edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), background, np.float32)
    breast = ((yy - 200) / 140.0) ** 2 + (xx / 210.0) ** 2 <= 1
    img[breast] = 0.25 + 0.5 * rng.random(breast.sum()).astype(np.float32) * 0.3 + 0.3 * (1 - xx[breast] / 210)
    if label:
        img[20:45, 240:290] = 0.95  # "R-MLO"
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), (0, 60, 210, 341)


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u


@pytest.mark.parametrize("background,noise", [(0.0, 0.0), (0.08, 0.02)])
def test_box_of_synthetic_breast_drops_the_label(background, noise):
    img, truth = _phantom(background=background, noise=noise)
    mask = breast_mask(img)
    assert mask.dtype == np.uint8 and mask.shape == img.shape
    assert mask[20:45, 240:290].sum() == 0  # label not breast
    box = breast_box(mask)
    assert _iou(box, truth) > 0.9, box
    assert 0.3 < tissue_fraction(mask) < 0.5


def test_uint16_input_gives_the_same_box():
    img, _ = _phantom()
    a = segment(img).box()
    b = segment(np.rint(img * 65535).astype(np.uint16)).box()
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1


def test_skin_fold_tail_below_the_breast_is_cut():
    img, truth = _phantom(label=False)
    img[340:395, 0:25] = 0.35  # a narrow strip of skin fold under the breast, joined to it
    box = segment(img).box()
    assert box[3] <= truth[3] + 8, box


def test_mirrored_breast_is_right_and_flips_to_the_left():
    img, _ = _phantom(label=False)
    right = img[:, ::-1].copy()
    mask = breast_mask(right)
    assert not chest_wall_on_left(mask)
    assert laterality_from_mask(mask) == "R"
    assert chest_wall_on_left(breast_mask(img)) and laterality_from_mask(breast_mask(img)) == "L"


def test_black_and_uniform_images_have_no_tissue():
    for value in (0.0, 0.6):
        with pytest.raises(SkipFile, match=r"no breast tissue found \(tissue fraction 0\.0000\)"):
            segment(np.full((200, 150), value, np.float32))


def test_speck_is_not_a_breast():
    img = np.zeros((400, 300), np.float32)
    img[100:104, 100:104] = 1.0
    with pytest.raises(SkipFile, match="no breast tissue"):
        segment(img)


def test_too_small_image():
    with pytest.raises(SkipFile, match=r"too small \(4 x 4 pixels\)"):
        segment(np.ones((4, 4), np.float32))


def test_mask_for_region_matches_full_mask():
    img, _ = _phantom()
    seg = segment(img)
    full = seg.full_mask()
    region = (10, 50, 230, 350)
    part = seg.mask_for_region(region, (220, 300))
    np.testing.assert_array_equal(part, full[50:350, 10:230])
    flipped = seg.mask_for_region(region, (220, 300), flip=True)
    np.testing.assert_array_equal(flipped, part[:, ::-1])


def test_pectoral_muscle_removed_on_mlo_only():
    img, _ = _phantom(label=False)
    yy, xx = np.mgrid[0:400, 0:300]
    muscle = (xx < 120 - 0.6 * (yy - 60)) & (yy >= 60)
    img[muscle & (img > 0)] = 0.97
    plain = segment(img, view="MLO")
    cut = segment(img, view="MLO", remove_pectoral_muscle=True)
    cc = segment(img, view="CC", remove_pectoral_muscle=True)
    assert cc.tissue_fraction == plain.tissue_fraction
    removed = plain.full_mask().astype(bool) & ~cut.full_mask().astype(bool)
    inside_muscle = removed[muscle].mean() if muscle.any() else 0
    assert removed.sum() > 0 and inside_muscle > 0.5
    assert removed[~muscle].sum() < 0.25 * removed.sum()


def test_fill_holes_is_scipys_binary_fill_holes():
    """The OpenCV flood fill gives exactly scipy's result (4-connected background), on random
    masks of every density and on masks whose holes touch the border."""
    from scipy import ndimage as ndi

    from mammodino.tissue.segmentation import fill_holes

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 60, 2)
        m = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    assert fill_holes(ring)[4, 4] and not fill_holes(ring)[0, 0]


def _fatty_film(seed=0):
    """The breast fills most of the film, so its fat outnumbers the air (0.004, a faint fog
    gradient)."""
    return fatty_film(fog_rise=0.0005, seed=seed), FATTY_FILM_BOX


def test_fatty_breast_that_outnumbers_the_air_is_found():
    """The fat is the dark class's most frequent level; taken for the air it put the
    threshold above the breast (a 2 %-high strip was the 'breast')."""
    img, truth = _fatty_film()
    seg = segment(img)
    assert _iou(seg.box(), truth) > 0.9, seg.box()
    assert 0.5 < seg.tissue_fraction < 0.7


def test_background_level_is_the_darkest_sizeable_mode():
    rng = np.random.default_rng(0)
    air = rng.normal(10, 2, 40_000)
    fat = rng.normal(60, 3, 60_000)
    two = np.clip(np.concatenate([air, fat]), 0, 255).astype(np.uint8)
    assert abs(background_level(two) - 10) <= 2
    # air that dominates, with a fatty tail above it: its own mode, as before
    tail = rng.uniform(12, 60, 20_000)
    one = np.clip(np.concatenate([air, tail]), 0, 255).astype(np.uint8)
    assert abs(background_level(one) - 10) <= 2
    # a few dark specks below the fat are not air
    specks = np.clip(np.concatenate([rng.normal(5, 1, 2_000), fat]), 0, 255).astype(np.uint8)
    assert abs(background_level(specks) - 60) <= 3


def test_a_mask_that_stops_just_short_of_an_air_framed_films_edge_is_carried_to_it():
    """mini-MIAS mdb110 / mdb126: segmented on the whole square, the skin-line snap took the
    black frame beyond the film for air and left the breast 3 px (at 512) short of the
    film's chest-wall edge, where two published lesions are centred."""
    from mammodino.tissue.segmentation import SNAP_BAND, _to_film_edge

    mask = np.zeros((40, 60), np.uint8)
    film = (10, 0, 50, 40)  # the film's edges at x = 10 and x = 50; top and bottom are the image's
    mask[5:30, 10 + 3:40] = 1  # stops 3 px short of the left edge ...
    mask[30:35, 10 + SNAP_BAND + 3:40] = 1  # ... and here further than the snap can move a boundary
    out = _to_film_edge(mask, film)
    assert out[5:30, 10:13].all() and not out[5:30, :10].any()  # carried to the edge, not into the frame
    assert not out[30:35, 10:10 + SNAP_BAND + 3].any()  # a breast that does not reach the edge stays
    assert not out[:, 40:].any() and not out[:5].any() and not out[35:].any()  # nothing else moves
    # sides that are the image's own edges are no film edge: nothing carried to them
    assert (_to_film_edge(mask, (0, 0, 60, 40)) == mask).all()


def test_white_bars_left_out_of_the_mask_are_no_air_for_the_fog_plane():
    """mini-MIAS mdb274: a third of what its mask left out was a white film-edge bar and a
    bright bottom band; the fog plane fitted to them tilted by 28 threshold steps and took
    the lower half of the breast out. Above Otsu's split and more than FOG_BRIGHT_AIR of
    the air, they leave the fit; a little bright air (the end of a fog patch) stays in."""
    from mammodino.tissue.segmentation import FOG_BRIGHT_AIR, Levels, _fog_air

    blurred = np.zeros((100, 100), np.float32)
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :40] = 1
    inside = np.ones((100, 100), bool)
    levels = Levels(background=0.0, threshold=0.03, otsu=0.3)
    blurred[:, 85:] = 0.95  # 15 of the 58 air columns: 26 % of the air
    air = _fog_air(blurred, inside, mask, levels)
    assert not air[:, 85:].any() and air[:, 60:85].all()
    assert not air[:, :42].any() and air[:, 42:85].all()  # clear of the mask (FOG_MARGIN, at this size 2 px)
    blurred[:, 85:] = 0.0
    blurred[:, 97:] = 0.95  # 3 columns: under FOG_BRIGHT_AIR of the air, part of the fit
    assert 3 / 58 < FOG_BRIGHT_AIR and _fog_air(blurred, inside, mask, levels)[:, 97:].all()
