"""DDSM digitised films with manual tissue masks: breast mask and pectoral removal against
the annotation (plain Otsu + largest component: breast mean 0.756)."""

import numpy as np
import pytest


def _summary(rows, key):
    return "\n".join(f"  {r['name']:24s} {'held' if r['held'] else 'tune'} {r[key]:.3f}" for r in rows)


@pytest.mark.parametrize("split", ["all", "held"])
def test_breast_mask_matches_the_annotation(ddsm_results, split):
    rows = [r for r in ddsm_results if split == "all" or r["held"]]
    """The issue's bar is 0.93; today 0.954 (tune 0.953, held-out 0.955; 0.936 before the
    tissue mask stopped at the annotated skin line), so the test holds it at 0.95."""
    mean = float(np.mean([r["breast"] for r in rows]))
    assert mean >= 0.95, f"{split}: breast mean IoU {mean:.3f} < 0.95\n{_summary(rows, 'breast')}"
    assert min(r["breast"] for r in rows) >= 0.80, _summary(rows, "breast")


@pytest.mark.parametrize("split", ["all", "held"])
def test_pectoral_removal_meets_the_issue_target(ddsm_results, split):
    """The issue's bar: mean >= 0.90 against breast-without-pectoral and no film below 0.80.
    Today mean 0.924 (tune 0.921, held-out 0.927), worst film 0.810 (held-out D_4588, a long
    soft skin ramp); the test holds the mean at 0.92."""
    rows = [r for r in ddsm_results if split == "all" or r["held"]]
    mean = float(np.mean([r["no_pec"] for r in rows]))
    assert mean >= 0.92, f"{split}: no-pec mean IoU {mean:.3f}\n{_summary(rows, 'no_pec')}"
    assert min(r["no_pec"] for r in rows) >= 0.80, _summary(rows, "no_pec")


def test_removal_takes_the_muscle_out_of_what_the_sampler_sees(ddsm_results):
    """The sampler decision: muscle share of the tissue mask falls from ~18 % to < 5 %,
    at the cost of < 2 % of the true breast on average."""
    with_muscle = np.mean([r["pec_share"] for r in ddsm_results])
    removed = np.mean([r["pec_share_removed"] for r in ddsm_results])
    lost = np.mean([r["lost"] for r in ddsm_results])
    assert with_muscle > 0.10 and removed < 0.05 and lost < 0.02, (with_muscle, removed, lost)



def test_pectoral_search_raises_no_runtime_warning(shared_data):
    """A candidate line with no sample inside the breast scored -inf * 0 = nan ("invalid value
    encountered in multiply" in pectoral._best_line): reproduced by film B_3606 with its mask
    cut to the 60 columns at the left edge."""
    import warnings

    import cv2

    from mammodino.tissue.pectoral import pectoral_mask
    from mammodino.tissue.segmentation import _mask_small, downsample

    path = shared_data / "ddsm_tissue" / "train_valid" / "fgt_seg" / "B_3606_1.RIGHT_MLO.png"
    if not path.exists():
        pytest.skip(f"DDSM film not found: {path}")
    small, _ = downsample(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    mask = _mask_small(small).extent.astype(bool)
    mask[:, 60:] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pectoral_mask(small, mask)


def test_pectoral_removal_leaves_the_crop_of_the_whole_breast(shared_data):
    """Removal takes the muscle out of the tissue mask (what the sampler draws from), never out
    of the box: the crop keeps the axillary tail and what lies beside the muscle."""
    import cv2

    from mammodino.tissue.segmentation import segment

    path = shared_data / "ddsm_tissue" / "train_valid" / "fgt_seg" / "A_0016_1.RIGHT_MLO.png"
    if not path.exists():
        pytest.skip(f"DDSM film not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    lab = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / path.name.replace(".png", "_LI.png")), cv2.IMREAD_GRAYSCALE)
    whole, removed = segment(img, view="MLO"), segment(img, view="MLO", remove_pectoral_muscle=True)
    assert removed.box() == whole.box() and removed.tissue_fraction == whole.tissue_fraction
    assert removed.small_mask.sum() < 0.85 * whole.small_mask.sum()  # the muscle is out of the mask
    assert np.array_equal(removed.breast_small, whole.breast_small)
    assert lab is not None, path
    # what is taken out is muscle
    muscle = cv2.resize((lab == 255).astype(np.uint8), removed.small_mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
    taken = whole.small_mask.astype(bool) & ~removed.small_mask.astype(bool)
    assert (muscle[taken] > 0).mean() > 0.8


def test_the_tissue_mask_stops_at_the_annotated_skin_line_and_the_box_at_the_ramps_foot(shared_data):
    """D_4555 (held out) has a long soft edge: the annotators' skin line lies 20-30 px up the
    ramp from where the breast meets the air. The tissue mask follows them; the box (and
    the crop) still reach the ramp's foot, and the tissue mask lies inside the breast's
    extent."""
    import cv2

    from mammodino.data.cache_geometry import mask_iou
    from mammodino.tissue.segmentation import breast_box, segment

    path = shared_data / "ddsm_tissue" / "train_valid" / "fgt_seg" / "D_4555_1.RIGHT_MLO.png"
    if not path.exists():
        pytest.skip(f"DDSM film not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    lab = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / path.name.replace(".png", "_LI.png")), cv2.IMREAD_GRAYSCALE)
    seg = segment(img, view="MLO")
    assert seg.extent is not None
    assert not (seg.small_mask.astype(bool) & ~seg.extent.astype(bool)).any()
    assert seg.box() == seg._to_source(breast_box(seg.extent))
    tissue = seg.full_mask().astype(bool)
    extent = seg.full_mask(whole_breast=True).astype(bool)
    truth = lab != 64
    assert mask_iou(tissue, truth) >= 0.90 and mask_iou(tissue, truth) >= mask_iou(extent, truth) + 0.05
    assert (truth & extent & ~tissue).sum() < 0.01 * truth.sum()  # what the cut took was ramp, not breast


def test_the_tissue_mask_agrees_with_the_annotators_better_than_the_extent(ddsm_results):
    """The extent (what the box is of) keeps the foot of the skin ramp and scores 0.936; the
    tissue mask, cut at the skin line, 0.954 on all 66 and better on both splits."""
    for held in (False, True):
        rows = [r for r in ddsm_results if r["held"] == held]
        extent = float(np.mean([r["extent"] for r in rows]))
        tissue = float(np.mean([r["breast"] for r in rows]))
        assert extent >= 0.93 and tissue >= extent + 0.01, (held, extent, tissue)
