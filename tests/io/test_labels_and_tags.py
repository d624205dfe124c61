"""Laterality/view normalisation and tolerant label tables (real RSNA/VinDr/CMMD layouts)."""

import pytest

from mammodino.errors import UserError
from mammodino.io.labels import load_label_table, stem_of
from mammodino.io.tags import identity_from_patient_id, normalise_laterality, normalise_view


@pytest.mark.parametrize("text,view", [
    ("CC", "CC"), ("mlo", "MLO"), ("cranio-caudal", "CC"), ("medio-lateral oblique", "MLO"),
    ("R-10226", "MLO"), ("399162004", "CC"), ("L-MLO", "MLO"), ("RCC", "CC"), ("XCCL", "XCCL"),
    ("FLATFIELD", ""), ("", ""), (None, ""),
])
def test_normalise_view(text, view):
    assert normalise_view(text) == view


@pytest.mark.parametrize("text,lat", [("L", "L"), ("right", "R"), ("Left breast", "L"), ("B", ""), ("", "")])
def test_normalise_laterality(text, lat):
    assert normalise_laterality(text) == lat


def test_stem_of():
    assert stem_of("a/b/123.dcm") == "123"
    assert stem_of("C:\\x\\9.png") == "9"
    assert stem_of("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    assert stem_of("mias/mdb001.pgm") == "mdb001"  # every format the image reader reads joins


def test_rsna_table(label_tables_dir):
    table = load_label_table(label_tables_dir / "rsna_train.csv")
    assert table["462822612"] == ("L", "CC")
    assert all(lat in "LR" and view for lat, view in table.values())


def test_vindr_table_uses_view_position(label_tables_dir):
    table = load_label_table(label_tables_dir / "vindr_breast-level_annotations.csv")
    assert table["d8125545210c08e1b1793a5af6458ee2"] == ("L", "CC")


def test_table_without_image_id_is_a_user_error(label_tables_dir):
    with pytest.raises(UserError, match="image-id column"):
        load_label_table(label_tables_dir / "cmmd_clinical.csv")


def test_tolerant_column_names(tmp_path):
    (tmp_path / "t.csv").write_text("File Name;ImageLaterality;ViewPosition\nimgs/a.png;Right;MLO\nb.dcm;L;cc\n")
    assert load_label_table(tmp_path / "t.csv") == {"a": ("R", "MLO"), "b": ("L", "CC")}


@pytest.mark.parametrize("patient_id,expected", [
    ("Mass-Test_P_00173_LEFT_CC", ("P_00173", "L", "CC")),
    ("Calc-Training_P_01234_RIGHT_MLO", ("P_01234", "R", "MLO")),
    ("Mass-Training_P_00001_LEFT_MLO_1", ("P_00001", "L", "MLO")),
    ("mass-test p_00173 left cc", ("P_00173", "L", "CC")),
    ("P_00042_RIGHT_XCCL", ("P_00042", "R", "XCCL")),
    ("ANON-0001", ("", "", "")),
    ("P_00173", ("", "", "")),
    ("", ("", "", "")),
    (None, ("", "", "")),
])
def test_identity_from_cbis_patient_id(patient_id, expected):
    assert identity_from_patient_id(patient_id) == expected


@pytest.mark.parametrize("rel,view", [
    ("train/A_0002_1.RIGHT_MLO.png", "MLO"),  # DDSM film names
    ("Mass-Training_P_00001_LEFT_CC/1.3.6.1.4/1-1.dcm", "CC"),  # CBIS-DDSM folders
    ("x/20586908_6c613a14_MG_R_CC_ANON.dcm", "CC"),  # INbreast
    ("L-MLO.png", "MLO"), ("RCC.tif", "CC"), ("lmlo.png", "MLO"), ("b/xccl_3.png", "XCCL"),
    ("MLO/case_cc.png", "CC"),  # the file's own name wins over its folder
    ("cc/img001.png", "CC"),
    ("cc_and_mlo.png", ""),  # two views in one name: not guessed
    ("mdb001.pgm", ""), ("at/iso/tan.png", ""), ("calc/img.png", ""), ("", ""),
])
def test_view_from_path(rel, view):
    from mammodino.io.tags import view_from_path

    assert view_from_path(rel) == view


def test_patient_from_path():
    from mammodino.io.tags import patient_from_path

    assert patient_from_path("Calc-Test_P_00038_LEFT_CC/1.3.6/1-1.png") == "P_00038"
    assert patient_from_path("Mass-Training_P_00001_RIGHT_MLO.png") == "P_00001"
    assert patient_from_path("train/A_0002_1.RIGHT_MLO.png") == ""


def test_a_mini_mias_info_file_gives_each_film_its_side_and_the_mlo_view(tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text("REFNUM BG CLASS SEVERITY X Y RADIUS\nmdb001 G CIRC B 535 425 197\nmdb002 G CIRC B 522 280 69\n"
                    "mdb003 D NORM \nmdb005 F CIRC B 477 133 30\nmdb005 F CIRC B 500 168 26\n")
    assert load_label_table(info) == {"mdb001": ("R", "MLO"), "mdb002": ("L", "MLO"), "mdb003": ("R", "MLO"),
                                      "mdb005": ("R", "MLO")}
