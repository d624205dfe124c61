"""DDSM digitised films with manual tissue masks: breast mask and pectoral removal against
the annotation (plain Otsu + largest component: breast mean 0.756)."""

import numpy as np
import pytest


def _summary(rows, key):
    return "\n".join(f"  {r['name']:24s} {'held' if r['held'] else 'tune'} {r[key]:.3f}" for r in rows)


@pytest.mark.parametrize("split", ["all", "held"])
def test_breast_mask_matches_the_annotation(ddsm_results, split):
    rows = [r for r in ddsm_results if split == "all" or r["held"]]
    mean = float(np.mean([r["breast"] for r in rows]))
    assert mean >= 0.93, f"{split}: breast mean IoU {mean:.3f} < 0.93\n{_summary(rows, 'breast')}"
    assert min(r["breast"] for r in rows) >= 0.80, _summary(rows, "breast")


def test_pectoral_removal_quality_bar_reached_today(ddsm_results):
    """Today: mean 0.903 (tune 0.901, held-out 0.908); the issue's per-film floor is not met
    yet (see the strict xfail below)."""
    mean = float(np.mean([r["no_pec"] for r in ddsm_results]))
    assert mean >= 0.90, f"no-pec mean IoU {mean:.3f}\n{_summary(ddsm_results, 'no_pec')}"
    assert min(r["no_pec"] for r in ddsm_results) >= 0.60


@pytest.mark.xfail(strict=True, reason="issue 9 target not met yet: pectoral-removed mean 0.903 but 3 films < 0.80 "
                   "(D_4555 0.796 and D_4588 0.754: their breast masks take in the film's halo; A_0589 "
                   "0.796: its crowded grey-level curve takes the smaller step into the halo)")
def test_pectoral_removal_issue_target(ddsm_results):
    mean = float(np.mean([r["no_pec"] for r in ddsm_results]))
    assert mean >= 0.90 and min(r["no_pec"] for r in ddsm_results) >= 0.80


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
    mask = _mask_small(small).astype(bool)
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
    assert np.array_equal(removed.breast_small, whole.small_mask)
    assert lab is not None, path
    # what is taken out is muscle
    muscle = cv2.resize((lab == 255).astype(np.uint8), removed.small_mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
    taken = whole.small_mask.astype(bool) & ~removed.small_mask.astype(bool)
    assert (muscle[taken] > 0).mean() > 0.8
