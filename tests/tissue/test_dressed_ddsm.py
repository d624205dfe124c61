"""Real breasts in film clothes: each DDSM film with its manual mask goes through the film
scanner of the phantoms (bright borders on 1-3 sides, label, lead markers, tape, a scanner
edge strip, grain; every other film mirrored to a left breast), as a CBIS-style 16/12-bit
film and as a MIAS-style 8-bit copy centred on a black square. The box must stay the box
that the clean film gets and keep the annotated breast inside it: the held-out check of
issue 9 (every lesion inside its breast box, no strip, no whole film) on real tissue."""

import sys
from pathlib import Path

import numpy as np
import pytest

from mammodino.data.cache_geometry import box_iou
from mammodino.synth.generate import FILM_BITS
from mammodino.synth.markers import PaddedSquare, dress_as_film
from mammodino.tissue.segmentation import segment


@pytest.fixture(scope="module")
def dressed(shared_data):
    """Per film: (name, IoU with the clean film's box, true breast inside the box) for the
    DICOM-like film and for its padded 8-bit copy, then the fibroglandular tissue (label
    192: where lesions arise) inside the box for each."""
    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from film_qc import ddsm_breasts, share_inside  # the benchmark's reader and score: one of each

    rows = []
    for i, name, inner, lab in ddsm_breasts(root):
        side = "LR"[i % 2]
        film = dress_as_film(inner, lab != 64, side, "MLO", np.random.default_rng([7, i]), bits=FILM_BITS[i % 2])
        clean = film.box(segment(inner, view="MLO").box())
        gland = film.mask(lab == 192)
        box = segment(film.film, view="MLO").box()
        square = PaddedSquare.fit(film.film.shape)
        pixels = square.image(film.film.astype(np.float64) / film.film.max())
        square_box = segment(pixels).box()  # no header: view unknown
        # mini-MIAS: the film against one side of its square (left or right, either breast)
        side_sq = PaddedSquare.fit(film.film.shape, align="left" if (i // 2) % 2 == 0 else "right")
        side_seg = segment(side_sq.image(film.film.astype(np.float64) / film.film.max()).astype(np.float32) / 255)
        side_box = side_seg.box()
        rows.append((name, box_iou(box, clean), share_inside(film.breast, box),
                     box_iou(square_box, square.box(clean)), share_inside(square.mask(film.breast), square_box),
                     share_inside(gland, box), share_inside(square.mask(gland), square_box),
                     box_iou(side_box, side_sq.box(clean)), side_seg.chest_wall_on_left() == (side == "L")))
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


def test_a_film_against_one_side_of_its_square(dressed):
    """mini-MIAS places a film against one side of its padding square; the film then meets
    the image edge on three sides, two corners show its own border, and its far-side border
    at that grey looked like frame: the frame was lost, and on the whole image a film's
    breast leans towards the square's filled side whatever its side. Measured (seed 7, each
    breast on either side): mean 0.955, min 0.793, the side right on 66 of 66; the code
    before: mean 0.949, min 0.651, the side right on 33 (through `index`, film_qc --ddsm
    --png8 --align: 27-31 of 66 suspect, "stops short of the chest wall")."""
    iou = np.array([r[7] for r in dressed])
    assert iou.mean() >= 0.94 and iou.min() >= 0.75, _table(dressed)
    assert all(r[8] for r in dressed), [r[0] for r in dressed if not r[8]]


def test_the_benchmark_writes_the_dressed_set_as_an_archive_would_hold_it(shared_data, tmp_path):
    """``film_qc.py --ddsm`` (and ``--png8``) writing its set: one DICOM film, truth masks and
    parseable boxes per DDSM film (a helper it imported was renamed once and the option died
    with an ImportError that no test saw)."""
    import csv

    import pydicom

    from mammodino.data.qc import parse_box

    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from film_qc import dress_ddsm, to_png8

    films = dress_ddsm(root, tmp_path / "films", seed=0, scale=0.5)
    rows = list(csv.DictReader((films / "labels.csv").open(newline="")))
    assert len(rows) == 66
    first = rows[0]
    ds = pydicom.dcmread(films / first["path"])
    assert ds.pixel_array.shape[0] > 400 and "MLO" in ds.PatientID
    for r in rows:
        box, clean = parse_box(r["breast_box"]), parse_box(r["clean_box"])
        assert box and clean and box_iou(box, clean) > 0.5, r
        assert (films / r["breast_mask"]).is_file() and (films / r["gland_mask"]).is_file()
    png = to_png8(films, tmp_path / "png8")
    moved = list(csv.DictReader((png / "labels.csv").open(newline="")))
    assert len(moved) == 66 and all(parse_box(r["breast_box"]) for r in moved)
    assert (png / moved[0]["path"]).is_file()


def test_a_film_whose_air_is_the_frames_black_is_judged_inside_its_film(shared_data, tmp_path):
    """MIAS squares: the film's own air digitised to the frame's 0 (``film_qc.black_point``),
    so the frame shows only where the breast meets the film's edge. Without the air-framed
    picture 24 of 66 such squares (scale 0.5) had no picture, and a good box then "stops 25 %
    short of the chest-wall edge" (the real mdb001 did); with it 64 of 66 are judged inside
    their film, and the box is still the one segmented on the whole square."""
    import csv

    import cv2

    from mammodino.data import qc

    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from film_qc import dress_ddsm, to_png8

    png = to_png8(dress_ddsm(root, tmp_path / "films", seed=0, scale=0.5), tmp_path / "png8", clip_air=True)
    framed = chest_wall = 0
    for r in csv.DictReader((png / "labels.csv").open(newline="")):
        img = cv2.imread(str(png / r["path"]), cv2.IMREAD_GRAYSCALE)
        seg = segment(img)
        row = qc.segmentation_fields(seg, not seg.chest_wall_on_left())
        framed += seg.picture_box() is not None
        chest_wall += "chest wall" in qc.reason_names(qc.check(row)[1])
        picture = seg.picture_box()
        if picture is not None:  # the box lies inside the film the picture says it is on (to 1 %)
            x0, y0, x1, y1 = seg.box()
            t = 0.01 * max(img.shape)
            assert picture[0] - t <= x0 and x1 <= picture[2] + t and picture[1] - t <= y0 and y1 <= picture[3] + t, \
                (r["path"], picture, seg.box())
    assert framed >= 60 and chest_wall <= 4, (framed, chest_wall)


def test_a_scratch_across_the_black_square_neither_hides_the_frame_nor_turns_the_breast(shared_data):
    """mini-MIAS mdb031 and 7 more of the 322: a 1-px scratch (0.02-0.03) across the black
    square beside the chest wall stopped the frame walk there, the breast was judged against
    the black beyond it and read as the other side. Real DDSM breasts dressed as films and
    centred on a square, the same scratch (and a speck of dust on it) drawn through the
    frame on the chest-wall side: every film framed and every side right (before the frame
    rules ignored lone pixels: 24 of 24 judged against the black beyond the scratch, 23 sides wrong)."""
    root = shared_data / "ddsm_tissue"
    if not root.exists():
        pytest.skip(f"DDSM films not found at {root}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from film_qc import ddsm_breasts

    wrong_side, wrong_frame = [], []
    for i, name, inner, lab in list(ddsm_breasts(root))[:24]:
        side = "LR"[i % 2]
        film = dress_as_film(inner, lab != 64, side, "MLO", np.random.default_rng([7, i]), bits=FILM_BITS[i % 2])
        square = PaddedSquare.fit(film.film.shape)
        img = square.image(film.film.astype(np.float64) / film.film.max())
        right = square.left + square.width
        frame = slice(right, square.side) if side == "R" else slice(0, square.left)
        row = square.top + (3 * square.height) // 4
        img[row, frame] = 6
        img[row, frame.start + 7] = 60
        seg = segment(img)
        if seg.chest_wall_on_left() != (side == "L"):
            wrong_side.append(name)
        picture = seg.picture_box()
        # judged inside its film (the picture may start past the film's own dark scanner strip)
        if picture is None or picture[0] < square.left - 4 or picture[2] > right + 4:
            wrong_frame.append((name, picture, (square.left, right)))
    print(f"wrong side {len(wrong_side)}, judged against the frame {len(wrong_frame)} of 24")
    assert not wrong_side and not wrong_frame, (wrong_side, wrong_frame)
