"""Task adapters on the real label-table layouts (VinDr, RSNA, CMMD in shared/data) and on
small tables written with the real column names (CBIS-DDSM, EMBED, INbreast, mini-MIAS)."""

import pytest

from eval_helpers import CBIS_CALC, CBIS_MASS

from mammodino.errors import UserError
from mammodino.eval.tasks import TASKS, load_task, task_table_markdown
from mammodino.eval.tasks.mias import parse_info
from mammodino.eval.tasks.vindr import parse_categories

# --------------------------------------------------------------------------- real layouts


def test_vindr_breast_level_tasks(label_tables_dir):
    table = label_tables_dir / "vindr_breast-level_annotations.csv"
    birads = load_task("vindr-birads", table)
    assert len(birads.rows) == 770 and birads.n_classes == 5
    counts = birads.counts()
    assert counts["BI-RADS 1"] == 533 and counts["BI-RADS 5"] == 8
    assert {r.split for r in birads.rows} == {"training", "test"}
    assert all(r.key_kind == "stem" and len(r.key) == 32 for r in birads.rows)  # image_id = file stem
    density = load_task("vindr-density", table).counts()
    assert density == {"A": 7, "B": 70, "C": 595, "D": 98}
    susp = load_task("vindr-suspicious", table).counts()
    assert susp == {"BI-RADS 1-3": 738, "BI-RADS 4-5": 32}


def test_vindr_finding_tasks(label_tables_dir):
    table = label_tables_dir / "vindr_finding_annotations.csv"
    finding = load_task("vindr-finding", table)
    assert finding.counts() == {"no finding": 701, "finding": 87}
    assert load_task("vindr-mass", table).counts()["mass"] == 45  # 43 'Mass' + 2 'Calcification, Mass'
    assert load_task("vindr-calcification", table).counts()["calcification"] == 26
    with pytest.raises(UserError, match="finding_categories"):
        load_task("vindr-mass", label_tables_dir / "vindr_breast-level_annotations.csv")


def test_vindr_findings_are_aggregated_per_image(tmp_path, label_tables_dir):
    lines = (label_tables_dir / "vindr_finding_annotations.csv").read_text().splitlines()
    header, first = lines[0], lines[1]  # first row: a Mass
    no_finding = [ln for ln in lines[1:] if "No Finding" in ln][0]
    # the same image twice: once 'No Finding'-like, once with a finding -> one positive row
    img = first.split(",")[2]
    dup = no_finding.split(",")
    dup[2] = img
    (tmp_path / "f.csv").write_text("\n".join([header, first, ",".join(dup)]) + "\n")
    t = load_task("vindr-finding", tmp_path / "f.csv")
    assert len(t.rows) == 1 and t.rows[0].label == 1


def test_parse_categories_is_safe_and_handles_lists():
    assert parse_categories("['Suspicious Calcification', 'Mass']") == ["Suspicious Calcification", "Mass"]
    assert parse_categories("['No Finding']") == ["No Finding"]
    parsed = parse_categories("__import__('os').system('true')")  # never evaluated
    assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed)


def test_rsna_tasks(label_tables_dir):
    table = label_tables_dir / "rsna_train.csv"
    cancer = load_task("rsna-cancer", table)
    assert len(cancer.rows) == 793 and cancer.counts() == {"no cancer": 777, "cancer": 16}
    assert cancer.rows[0].key == "462822612" and cancer.rows[0].patient == "10006"
    density = load_task("rsna-density", table)
    assert density.counts() == {"A": 41, "B": 181, "C": 177, "D": 26}
    assert density.n_no_label == 368  # empty density: counted, not silently dropped


def test_cmmd_task(label_tables_dir):
    t = load_task("cmmd-malignant", label_tables_dir / "cmmd_clinical.csv")
    assert t.counts() == {"benign": 188, "malignant": 436}
    assert all(r.key_kind == "patient" and r.laterality in ("L", "R") for r in t.rows)
    assert t.rows[0].key == "D1-0001" and t.rows[0].laterality == "R"


# --------------------------------------------------------------------------- constructed tables

def test_cbis_tasks(tmp_path):
    (tmp_path / "mass.csv").write_text(CBIS_MASS)
    (tmp_path / "calc.csv").write_text(CBIS_CALC)
    both = [tmp_path / "mass.csv", tmp_path / "calc.csv"]
    path = load_task("cbis-pathology", both)
    assert len(path.rows) == 4  # P_00004's two abnormalities are one image: malignant wins
    by = {r.key.split("/")[0]: r for r in path.rows}
    assert by["Mass-Training_P_00004_LEFT_MLO"].label == 1
    assert by["Calc-Test_P_00038_LEFT_CC"].label == 0  # BENIGN_WITHOUT_CALLBACK is benign
    assert by["Calc-Test_P_00038_LEFT_CC"].split == "test" and by["Mass-Training_P_00001_LEFT_CC"].split == "train"
    assert by["Mass-Training_P_00001_LEFT_CC"].laterality == "L"
    assert load_task("cbis-type", both).counts() == {"mass": 2, "calcification": 2}
    density = load_task("cbis-density", ",".join(map(str, both)))  # both spellings of the column
    assert density.counts() == {"1": 0, "2": 1, "3": 2, "4": 0}
    assert density.n_no_label == 1  # density 0 in a calc row


def test_embed_tasks(tmp_path):
    (tmp_path / "embed.csv").write_text(
        "empi_anon,acc_anon,anon_dicom_path,ImageLateralityFinal,ViewPosition,side,asses,tissueden\n"
        "11,100,/mnt/NAS2/mammo/anon_dicom/cohort_1/11/1.2.3/1.2.3.4.dcm,L,CC,L,S,3.0\n"
        "11,100,/mnt/NAS2/mammo/anon_dicom/cohort_1/11/1.2.3/1.2.3.4.dcm,L,CC,R,B,3.0\n"
        "11,100,/mnt/NAS2/mammo/anon_dicom/cohort_1/11/1.2.3/1.2.3.5.dcm,R,CC,R,B,3.0\n"
        "12,101,/mnt/NAS2/mammo/anon_dicom/cohort_1/12/1.2.9/1.2.9.1.dcm,L,MLO,,N,5\n"
    )
    dens = load_task("embed-density", tmp_path / "embed.csv")
    assert dens.counts() == {"1": 0, "2": 0, "3": 2, "4": 0} and dens.n_no_label == 1  # 5 = male
    asses = load_task("embed-assessment", tmp_path / "embed.csv")
    labels = {r.key.rsplit("/", 1)[-1]: asses.classes[r.label] for r in asses.rows}
    # the R-side finding does not belong to the L image
    assert labels == {"1.2.3.4.dcm": "BI-RADS 4 (S)", "1.2.3.5.dcm": "BI-RADS 2 (B)", "1.2.9.1.dcm": "BI-RADS 1 (N)"}
    (tmp_path / "clinical.csv").write_text("empi_anon,acc_anon,side,asses,tissueden\n1,2,L,N,2\n")
    with pytest.raises(UserError, match="merge it with the metadata"):
        load_task("embed-density", tmp_path / "clinical.csv")


def test_inbreast_tasks(tmp_path):
    (tmp_path / "INbreast.csv").write_text(
        "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
        "removed;removed;R;CC;201001;22678622;4;1\n"
        "removed;removed;L;CC;201001;22678646;4;4c\n"
        "removed;removed;L;MLO;201001;22678694;;5\n"
    )
    b = load_task("inbreast-birads", tmp_path / "INbreast.csv")
    assert [b.classes[r.label] for r in b.rows] == ["BI-RADS 1", "BI-RADS 4", "BI-RADS 5"]
    assert all(r.key_kind == "prefix" and r.patient == "" for r in b.rows)  # "removed" is no id
    d = load_task("inbreast-density", tmp_path / "INbreast.csv")
    assert d.counts()["4"] == 2 and d.n_no_label == 1


MIAS = """mdb001 G CIRC B 535 425 197
mdb002 G CIRC B 522 280 69
mdb003 D NORM
mdb005 F CIRC B 477 133 30
mdb005 F CIRC B 500 168 26
mdb023 G CIRC M 538 681 29
mdb059 F CIRC B *NOTE 3*
mdb209 G CALC M 647 503 87
"""


def test_mias_parsing(tmp_path):
    (tmp_path / "Info.txt").write_text("REFNUM BG CLASS SEVERITY X Y RADIUS\n" + MIAS + "\n")
    findings = parse_info(tmp_path / "Info.txt")
    assert len(findings) == 8
    f1, f2, f3 = findings[:3]
    assert (f1.refnum, f1.tissue, f1.abnormality, f1.severity, f1.x, f1.y, f1.radius) == (
        "mdb001", "G", "CIRC", "B", 535, 425, 197)
    assert f1.laterality == "R" and f2.laterality == "L" and f1.patient == f2.patient != f3.patient
    assert f3.severity == "" and f3.x is None
    assert findings[6].severity == "B" and findings[6].x is None  # '*NOTE 3*' instead of coordinates


def test_mias_tasks(tmp_path):
    (tmp_path / "Info.txt").write_text(MIAS)
    dens = load_task("mias-density", tmp_path / "Info.txt")
    assert len(dens.rows) == 7  # mdb005's two lines are one image
    assert {r.key: dens.classes[r.label] for r in dens.rows}["mdb003"] == "D"
    ab = {r.key: r.label for r in load_task("mias-abnormal", tmp_path / "Info.txt").rows}
    assert ab["mdb003"] == 0 and ab["mdb001"] == 1
    mal = load_task("mias-malignant", tmp_path / "Info.txt")
    assert "mdb003" not in {r.key for r in mal.rows}  # normal images are not in this task
    assert mal.counts() == {"benign": 4, "malignant": 2}
    assert all(r.view == "MLO" for r in mal.rows)


def test_generic_task(tmp_path):
    (tmp_path / "t.csv").write_text("file,grade,pid,part\na/x1.png,benign,p1,train\na/x2.png,malignant,p2,test\n")
    t = load_task("generic", tmp_path / "t.csv", path_col="file", label_col="grade", patient_col="pid",
                  split_col="part")
    assert t.classes == ["benign", "malignant"] and [r.split for r in t.rows] == ["train", "test"]
    with pytest.raises(UserError, match="--path-col"):
        load_task("generic", tmp_path / "t.csv")


def test_unknown_task_and_missing_table():
    with pytest.raises(UserError, match="unknown task"):
        load_task("nope", "x.csv")
    with pytest.raises(UserError, match="no such file"):
        load_task("rsna-cancer", "/nonexistent/train.csv")
    with pytest.raises(UserError, match="--labels"):
        load_task("rsna-cancer", None)


def test_every_task_is_documented():
    table = task_table_markdown()
    assert all(f"`{name}`" in table for name in TASKS)
    assert len(TASKS) == 24
