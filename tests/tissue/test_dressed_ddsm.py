"""Real breasts in film clothes: each DDSM film with its manual mask goes through the film
scanner of the phantoms (bright borders on 1-3 sides, label, lead markers, tape, a scanner
edge strip, grain; every other film mirrored to a left breast), as a CBIS-style 16/12-bit
film and as a MIAS-style 8-bit copy centred on a black square. The box must stay the box
that the clean film gets and keep the annotated breast inside it: the held-out check of
issue 9 (every lesion inside its breast box, no strip, no whole film) on real tissue."""

import cv2
import numpy as np
import pytest

from mammodino.data.cache_geometry import box_iou
from mammodino.synth.generate import FILM_BITS
from mammodino.synth.markers import dress_as_film
from mammodino.tissue.segmentation import segment

SQUARE = 1024


def _films(root):
    films = sorted(root.glob("*/fgt_seg/*.png"))
    if not films:
        pytest.skip(f"DDSM films not found under {root}")
    return films


def _share_inside(mask, box):
    x0, y0, x1, y1 = box
    return np.count_nonzero(mask[y0:y1, x0:x1]) / max(1, np.count_nonzero(mask)) if mask.any() else 1.0


def _on_film(mask, to_film, breast, mirrored):
    """A mask of the clean film put on the dressed film's grid (where the film shows breast)."""
    x0, y0, x1, y1 = to_film((0, 0, mask.shape[1], mask.shape[0]))
    out = np.zeros_like(breast)
    out[y0:y1, x0:x1] = mask[:, ::-1] if mirrored else mask
    return out & breast


def _on_black_square(film, breast, clean):
    """MIAS-like: scaled to a 1,024 long side, centred on black, 8 bits."""
    h, w = film.shape
    scale = SQUARE / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    ox, oy = (SQUARE - nw) // 2, (SQUARE - nh) // 2
    square = np.zeros((SQUARE, SQUARE), np.uint8)
    small = cv2.resize(film.astype(np.float32) / film.max(), (nw, nh), interpolation=cv2.INTER_AREA)
    square[oy:oy + nh, ox:ox + nw] = np.clip(small * 255 + 0.5, 0, 255)
    truth = np.zeros((SQUARE, SQUARE), bool)
    truth[oy:oy + nh, ox:ox + nw] = cv2.resize(breast.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    moved = (round(ox + clean[0] * scale), round(oy + clean[1] * scale), round(ox + clean[2] * scale),
             round(oy + clean[3] * scale))
    return square, truth, moved


@pytest.fixture(scope="module")
def dressed(shared_data):
    """Per film: (name, IoU with the clean film's box, true breast inside the box) for the
    DICOM-like film and for its padded 8-bit copy."""
    rows = []
    for i, path in enumerate(_films(shared_data / "ddsm_tissue")):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        lab = cv2.imread(str(path.parent.parent / "fgt_seg_labels" / f"{path.stem}_LI.png"), cv2.IMREAD_GRAYSCALE)
        whole, gland = lab != 64, lab == 192  # fibroglandular tissue: where lesions arise
        if np.count_nonzero(whole[:, : whole.shape[1] // 2]) < np.count_nonzero(whole[:, whole.shape[1] // 2:]):
            img, whole, gland = img[:, ::-1], whole[:, ::-1], gland[:, ::-1]  # the scanner wants the chest wall left
        inner = np.ascontiguousarray(img, dtype=np.float32) / 255.0
        side = "LR"[i % 2]
        film, breast, to_film = dress_as_film(inner, np.ascontiguousarray(whole), side, "MLO",
                                              np.random.default_rng([7, i]), bits=FILM_BITS[i % 2])
        clean = to_film(segment(inner, view="MLO").box())
        box = segment(film, view="MLO").box()
        gland = _on_film(gland, to_film, breast, side == "R")
        square, truth, moved = _on_black_square(film, breast, clean)
        square_gland = _on_black_square(film, gland, clean)[1]
        square_box = segment(square).box()  # no header: view unknown
        rows.append((path.stem, box_iou(box, clean), _share_inside(breast, box),
                     box_iou(square_box, moved), _share_inside(truth, square_box),
                     _share_inside(gland, box), _share_inside(square_gland, square_box)))
    return rows


def _table(rows):
    return "\n".join(f"  {r[0]:24s} film {r[1]:.3f} in {r[2]:.3f} gland {r[5]:.3f}  square {r[3]:.3f} in {r[4]:.3f} "
                     f"gland {r[6]:.3f}" for r in rows)


@pytest.mark.parametrize("copy", ["film", "square"])
def test_dressing_leaves_the_clean_films_box(dressed, copy):
    """Measured (seed 7): film mean 0.956, min 0.784; square mean 0.955, min 0.795. Before
    the scanner-strip rules (film.EDGE_SKIP 4 -> 8, film._past_scanner_strips): film min
    0.735 (a border behind a wide scanner strip joined the muscle), square mean 0.925 with
    5 films below 0.7 (their padding frame lost; 0.369 at worst)."""
    iou = np.array([r[1] if copy == "film" else r[3] for r in dressed])
    assert iou.mean() >= 0.94, _table(dressed)
    assert iou.min() >= 0.75, _table(dressed)


@pytest.mark.parametrize("copy", ["film", "square"])
def test_the_annotated_breast_stays_inside_the_box(dressed, copy):
    """What falls outside is the skin fold under the breast that the ends rule cuts (up to
    5 % of the annotated area on these films), never the breast's body."""
    inside = np.array([r[2] if copy == "film" else r[4] for r in dressed])
    assert inside.mean() >= 0.98, _table(dressed)
    assert inside.min() >= 0.93, _table(dressed)


@pytest.mark.parametrize("copy", ["film", "square"])
def test_the_fibroglandular_tissue_stays_inside_the_box(dressed, copy):
    """Where lesions arise: measured (seed 7) >= 0.994 of the annotated fibroglandular area
    inside the box on every film, >= 0.988 on every square (clean films: >= 0.999)."""
    inside = np.array([r[5] if copy == "film" else r[6] for r in dressed])
    assert inside.min() >= 0.98, _table(dressed)
