"""Task adapters: public label tables -> :class:`TaskLabels` (one labelled row per image).

``load_task(name, labels, **options)`` is the entry point; ``TASKS`` lists every task with
its dataset, source columns and label definition (the table in docs/eval.md is
generated from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mammodino.errors import UserError
from mammodino.eval.tasks import cbis, cmmd, ddsm_density, emory_embed, generic, inbreast, mias, phantom, rsna, vindr
from mammodino.eval.tasks.base import KEY_KINDS, LabelRow, TaskLabels, read_table

__all__ = ["TASKS", "TaskSpec", "load_task", "LabelRow", "TaskLabels", "KEY_KINDS", "read_table", "task_table_markdown"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str
    table: str
    columns: str
    definition: str
    loader: Callable[..., TaskLabels]


_SPECS = [
    TaskSpec("vindr-birads", "VinDr-Mammo", "breast-level_annotations.csv (or finding_annotations.csv)",
             "image_id, study_id, breast_birads, split", "BI-RADS 1..5 (5 classes)", vindr.birads),
    TaskSpec("vindr-density", "VinDr-Mammo", "breast-level_annotations.csv",
             "image_id, study_id, breast_density, split", "DENSITY A..D (4 classes)", vindr.density),
    TaskSpec("vindr-suspicious", "VinDr-Mammo", "breast-level_annotations.csv",
             "image_id, study_id, breast_birads, split", "BI-RADS >= 4 vs 1-3", vindr.suspicious),
    TaskSpec("vindr-finding", "VinDr-Mammo", "finding_annotations.csv",
             "image_id, study_id, finding_categories, split",
             "any finding row other than ['No Finding'] (per image)", vindr.finding),
    TaskSpec("vindr-mass", "VinDr-Mammo", "finding_annotations.csv",
             "image_id, study_id, finding_categories, split", "'Mass' among the image's findings", vindr.mass),
    TaskSpec("vindr-calcification", "VinDr-Mammo", "finding_annotations.csv",
             "image_id, study_id, finding_categories, split",
             "'Suspicious Calcification' among the image's findings", vindr.calcification),
    TaskSpec("rsna-cancer", "RSNA", "train.csv", "image_id, patient_id, cancer", "cancer 1 vs 0", rsna.cancer),
    TaskSpec("rsna-density", "RSNA", "train.csv", "image_id, patient_id, density",
             "density A..D (rows with no density are unlabelled)", rsna.density),
    TaskSpec("cbis-pathology", "CBIS-DDSM", "mass/calc_case_description_*.csv",
             "image file path, patient_id, pathology", "MALIGNANT vs BENIGN / BENIGN_WITHOUT_CALLBACK (any abnormality)",
             cbis.pathology),
    TaskSpec("cbis-type", "CBIS-DDSM", "mass + calc case description tables",
             "image file path, patient_id, abnormality type", "mass vs calcification", cbis.abnormality_type),
    TaskSpec("cbis-density", "CBIS-DDSM", "mass/calc_case_description_*.csv",
             "image file path, patient_id, breast_density / breast density", "density 1..4", cbis.density),
    TaskSpec("cmmd-malignant", "CMMD", "CMMD_clinicaldata_revision.csv",
             "ID1, LeftRight, classification", "Malignant vs Benign (per breast; images by patient + side)",
             cmmd.malignant),
    TaskSpec("embed-density", "EMBED", "clinical merged with metadata on acc_anon",
             "anon_dicom_path, empi_anon, tissueden", "tissueden 1..4 (5 = male: unlabelled)", emory_embed.density),
    TaskSpec("embed-assessment", "EMBED", "clinical merged with metadata on acc_anon",
             "anon_dicom_path, empi_anon, asses, side", "BI-RADS assessment letter A,N,B,P,S,M,K -> 0..6 (worst finding)",
             emory_embed.assessment),
    TaskSpec("inbreast-birads", "INbreast", "INbreast.csv (;)", "File Name (prefix), Bi-Rads",
             "BI-RADS 1..6 (4a/4b/4c pooled as 4)", inbreast.birads),
    TaskSpec("inbreast-density", "INbreast", "INbreast.csv (;)", "File Name (prefix), ACR", "ACR density 1..4",
             inbreast.density),
    TaskSpec("mias-density", "mini-MIAS", "Info.txt", "REFNUM, background tissue", "F / G / D", mias.density),
    TaskSpec("mias-abnormal", "mini-MIAS", "Info.txt", "REFNUM, class", "any class other than NORM", mias.abnormal),
    TaskSpec("mias-malignant", "mini-MIAS", "Info.txt", "REFNUM, class, severity",
             "severity M vs B (abnormal images only)", mias.malignant),
    TaskSpec("phantom-lesion", "phantoms", "labels.csv", "image_id, patient_id, lesion", "lesion 1 vs 0",
             phantom.lesion),
    TaskSpec("phantom-density", "phantoms", "labels.csv", "image_id, patient_id, density", "density A..D",
             phantom.density),
    TaskSpec("phantom-dbt-slice-lesion", "phantoms", "labels.csv", "image_id, kind, lesion, lesion_slices",
             "DBT slice within lesion_slices (needs embed --dbt-slices all)", phantom.dbt_slice_lesion),
    TaskSpec("ddsm-percent-density", "DDSM (masks of Tiryaki et al.)", "the ddsm_tissue folder: */fgt_seg_labels/*_LI.png",
             "mask labels 128 adipose, 192 fibroglandular",
             "percent density (fibroglandular / breast area) above vs below the median; Spearman via "
             "eval.tasks.ddsm_density.spearman_score", ddsm_density.dense),
    TaskSpec("generic", "any", "CSV", "--path-col, --label-col, --patient-col",
             "the label column's values (sorted)", generic.generic),
]

TASKS: dict[str, TaskSpec] = {s.name: s for s in _SPECS}


def load_task(name: str, labels, **options) -> TaskLabels:
    """Read ``labels`` (a path, a list of paths or "a,b") for task ``name``.

    ``options`` go to the generic adapter (``path_col``, ``label_col``, ``patient_col``,
    ``laterality_col``, ``view_col``, ``split_col``) and are ignored by the others.
    """
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    if labels is None or labels == [] or labels == "":
        raise UserError(f"task {name}: give the label table with --labels")
    spec = TASKS[name]
    try:
        if name == "generic":
            return spec.loader(labels, **{k: v for k, v in options.items() if v is not None})
        return spec.loader(labels)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeError) as exc:  # a value no check foresaw
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"task {name}: the label table {labels} holds a value it cannot read ({text})") from None


def task_table_markdown() -> str:
    lines = ["| task | dataset | table | columns | label |", "|---|---|---|---|---|"]
    for s in _SPECS:
        lines.append(f"| `{s.name}` | {s.dataset} | {s.table} | {s.columns} | {s.definition} |")
    return "\n".join(lines)
