"""benchmarks/lesions_in_box.py: published lesion positions against the boxes `index` writes
(the check held-out real films are judged by), on film phantoms with known lesions and on
tables in the MIAS and VinDr layouts."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import lesions_in_box as lib  # noqa: E402


@pytest.fixture(scope="module")
def films_with_lesions(tmp_path_factory):
    """8 film phantoms (4 with a lesion), their lesion table as VinDr-style boxes, and the
    index of the folder as the benchmark runs it (the production command)."""
    from mammodino.synth.generate import generate_phantoms

    root = tmp_path_factory.mktemp("lesion-films")
    src = root / "films"
    generate_phantoms(src, n_ffdm=8, n_dbt=0, seed=0, ffdm_shape=(450, 280), film=True)
    labels = list(csv.DictReader((src / "labels.csv").open(newline="")))
    table = root / "finding_annotations.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "finding_categories", "xmin", "ymin", "xmax", "ymax"])
        for r in labels:
            box = r["lesion_box"].split()
            w.writerow([Path(r["path"]).stem, "['Mass']" if box else "['No Finding']", *(box or ["", "", "", ""])])
    cache = root / "cache"
    lib.index(src / "ffdm", cache, workers=1)
    return src, table, cache, labels


def test_every_phantom_lesion_lies_inside_the_box_index_writes(films_with_lesions):
    src, table, cache, labels = films_with_lesions
    lesions = lib.read_lesions(table)
    assert len(lesions) == sum(bool(r["lesion_box"]) for r in labels) >= 3  # normal rows have no coordinates
    rows = lib.evaluate(cache, lesions)
    assert len(rows) == len(labels)
    assert sum(r["lesions"] for r in rows) == len(lesions)
    assert all(r["centre_in"] == r["whole_in"] == r["lesions"] for r in rows)
    assert not any(r["strip"] or r["whole"] for r in rows)
    text = lib.report(rows, len(lesions), "indexed", per_image=False)
    assert f"centre inside the box {len(lesions)}, whole lesion inside {len(lesions)}" in text


def test_a_lesion_outside_its_box_is_named_with_its_file(films_with_lesions, tmp_path):
    src, table, cache, labels = films_with_lesions
    row = next(r for r in lib.evaluate(cache, []) if r["file"])
    x0, y0, x1, y1 = (int(v) for v in row["box"].split())
    H = int(row["size"].split("x")[1])
    bad = tmp_path / "points.csv"
    # one point just past the box's exclusive right edge, one inside: the check can fail
    bad.write_text(f"image,x,y,radius\n{Path(row['file']).stem},{x1},{(y0 + y1) // 2},0\n"
                   f"{Path(row['file']).stem},{(x0 + x1) // 2},{(y0 + y1) // 2},{H}\n")
    rows = lib.evaluate(cache, lib.read_lesions(bad))
    hit = next(r for r in rows if r["file"] == row["file"])
    assert (hit["lesions"], hit["centre_in"], hit["whole_in"]) == (2, 1, 0)
    text = lib.report(rows, 2, "indexed", per_image=False)
    assert row["file"] in text and "LESION OUTSIDE" in text


def test_mias_centres_count_rows_from_the_bottom_of_the_film(tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text("REFNUM BG CLASS SEVERITY X Y RADIUS\nmdb001 G CIRC B 535 425 197\nmdb003 D NORM\n"
                    "mdb005 F CIRC B 477 133 30\nmdb007 G CIRC B 500 10 30\n")
    lesions = lib.read_lesions(info)
    assert [lesion["stem"] for lesion in lesions] == ["mdb001", "mdb005", "mdb007"]  # NORM has no position
    centre, extent = lib.place(lesions[0], 1024, 1024)
    assert centre == (535, 1024 - 425)
    assert extent == (535 - 197, 1024 - 425 - 197, 535 + 197, 1024 - 425 + 197)
    assert lib.place(lesions[1], 1024, 1024) == ((477, 891), (447, 861, 507, 921))
    assert lib.place(lesions[2], 1024, 1024) == ((500, 1014), (470, 984, 530, 1024))  # clipped to the film
    # a copy resized to 512: the table's coordinates are on the 1,024-px squares
    assert lib.place(lesions[1], 512, 512, lib.MIAS_GRID) == ((238.5, 445.5), (223.5, 430.5, 253.5, 460.5))


def test_a_table_without_coordinates_is_refused_with_its_columns(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("image_id,label\na,1\n")
    with pytest.raises(Exception, match="xmin, ymin, xmax, ymax.*image_id, label"):
        lib.read_lesions(table)


def test_vindr_finding_boxes_are_read_from_the_real_table_layout(label_tables_dir):
    """VinDr-Mammo's finding_annotations.csv: one row per finding, boxes in source pixels,
    'No Finding' rows without coordinates."""
    import csv

    table = label_tables_dir / "vindr_finding_annotations.csv"
    rows = list(csv.DictReader(table.open(newline="")))
    with_box = [r for r in rows if r["xmin"].strip()]
    lesions = lib.read_lesions(table)
    assert len(lesions) == len(with_box) > 0
    first = with_box[0]
    box = tuple(float(first[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    assert lesions[0]["stem"] == first["image_id"] and lesions[0]["box"] == box
    centre, extent = lib.place(lesions[0], int(first["height"]), int(first["width"]))
    assert centre == ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) and extent == box


def test_a_table_names_its_images_by_stem_or_by_file_name(tmp_path):
    """mini-DDSM names hold a dot (``C_0029_1.LEFT_CC.jpg``): only an image or DICOM
    extension comes off, so the table's ``C_0029_1.LEFT_CC`` meets its file (before, all 24
    lesions of 20 mini-DDSM films were "not on an indexed image"); a DICOM UID name keeps
    its last part."""
    assert lib.stem_of("C_0029_1.LEFT_CC") == "C_0029_1.LEFT_CC"
    assert lib.stem_of("C_0029_1.LEFT_CC.jpg") == "C_0029_1.LEFT_CC"
    assert lib.stem_of("1.2.826.0.1.3680043.8.498.123") == "1.2.826.0.1.3680043.8.498.123"
    assert lib.stem_of("train/1-1.dcm") == "1-1"
    table = tmp_path / "lesions.csv"
    table.write_text("image,xmin,ymin,xmax,ymax\nC_0029_1.LEFT_CC,188,928,596,1264\n")
    assert [les["stem"] for les in lib.read_lesions(table)] == ["C_0029_1.LEFT_CC"]
