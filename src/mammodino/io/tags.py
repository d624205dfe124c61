"""Laterality and view from DICOM tags or from free text (label tables).

Mammography archives spell these many ways: ``ImageLaterality`` or the series-level
``Laterality`` (or ``FrameLaterality`` in enhanced DBT), ``ViewPosition`` (absent in RSNA),
or only a coded ``ViewCodeSequence`` ("cranio-caudal", SNOMED-RT ``R-10242`` or SNOMED CT
``399162004``). Everything is normalised to "L"/"R" and to the ACR view abbreviations.
"""

from __future__ import annotations

import re

# ACR abbreviations we keep as they are (implant-displaced "ID" variants included).
KNOWN_VIEWS = {
    "CC", "MLO", "ML", "LM", "LMO", "XCCL", "XCCM", "FB", "SIO", "ISO", "AT", "CV", "RL", "RM", "TAN",
    "CCID", "MLOID", "MLID", "LMID", "XCCLID", "XCCMID", "FBID",
}

# Code meanings (lower case, letters only) and code values -> view.
_VIEW_MEANINGS = {
    "craniocaudal": "CC",
    "mediolateraloblique": "MLO",
    "mediolateral": "ML",
    "lateromedial": "LM",
    "lateromedialoblique": "LMO",
    "craniocaudalexaggeratedlaterally": "XCCL",
    "craniocaudalexaggeratedmedially": "XCCM",
    "caudocranialfrombelow": "FB",
    "frombelow": "FB",
    "caudocranial": "FB",
    "superolateraltoinferomedialoblique": "SIO",
    "inferomedialtosuperolateraloblique": "ISO",
    "axillarytail": "AT",
    "cleavage": "CV",
    "tangential": "TAN",
}
_VIEW_CODES = {
    # SNOMED-RT (SRT)
    "R-10242": "CC", "R-10226": "MLO", "R-10224": "ML", "R-10228": "LM", "R-10230": "LMO",
    "R-1024A": "XCCL", "R-1024B": "XCCM", "R-102C2": "FB", "R-102D0": "SIO", "R-40AAA": "AT",
    "R-1024E": "CV",
    # SNOMED CT
    "399162004": "CC", "399368009": "MLO", "399260004": "ML", "399352003": "LM", "399099002": "LMO",
    "399192003": "XCCL", "399101009": "XCCM", "399196006": "FB", "399188001": "SIO",
    "399255006": "AT", "399265009": "CV",
}
_LATERALITY = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R", "LT": "L", "RT": "R", "G": "L", "D": "R"}


def normalise_laterality(value) -> str:
    """'L', 'left', 'Left breast', ... -> "L"; anything else (B, U, blank) -> ""."""
    if value is None:
        return ""
    text = str(value).strip().upper()
    if text in _LATERALITY:
        return _LATERALITY[text]
    words = re.findall(r"[A-Z]+", text)
    if words and words[0] in _LATERALITY:
        return _LATERALITY[words[0]]
    return ""


def normalise_view(value) -> str:
    """'CC', 'cranio-caudal', 'R-10226', 'L-MLO' ... -> ACR abbreviation, else ""."""
    if value is None:
        return ""
    text = str(value).strip()
    if not text:
        return ""
    upper = text.upper().replace(" ", "").replace("_", "")
    if upper in KNOWN_VIEWS:
        return upper
    if text in _VIEW_CODES:
        return _VIEW_CODES[text]
    letters = re.sub(r"[^a-z]", "", text.lower())
    if letters in _VIEW_MEANINGS:
        return _VIEW_MEANINGS[letters]
    # "L-MLO", "RCC", "LMLO": a side prefix glued to the view
    m = re.fullmatch(r"[LR][-_ ]?([A-Z]+)", text.upper())
    if m and m.group(1) in KNOWN_VIEWS:
        return m.group(1)
    return ""


def _first(seq_elem):
    try:
        return seq_elem[0] if seq_elem else None
    except (TypeError, IndexError):
        return None


def laterality_from_tags(ds) -> str:
    for keyword in ("ImageLaterality", "Laterality"):
        lat = normalise_laterality(ds.get(keyword))
        if lat:
            return lat
    # enhanced multi-frame (DBT): Frame Anatomy in the shared functional groups
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    if shared is not None:
        anatomy = _first(shared.get("FrameAnatomySequence"))
        if anatomy is not None:
            return normalise_laterality(anatomy.get("FrameLaterality"))
    return ""


def view_from_tags(ds) -> str:
    view = normalise_view(ds.get("ViewPosition"))
    if view:
        return view
    item = _first(ds.get("ViewCodeSequence"))
    if item is not None:
        view = normalise_view(item.get("CodeMeaning")) or normalise_view(item.get("CodeValue"))
    return view


# CBIS-DDSM puts the whole image identity into PatientID ("Mass-Test_P_00173_LEFT_CC",
# "Calc-Training_P_01234_RIGHT_MLO", ROI/crop files add "_1"): its films have no
# ImageLaterality or ViewPosition. The woman is "P_00173"; without parsing, her four views
# would get four patient keys and a patient-level split would leak her across train/test.
_CBIS_ID = re.compile(
    r"(?:^|[_\-\s])(?P<patient>P_\d{3,})[_\-\s]+(?P<side>LEFT|RIGHT)[_\-\s]+(?P<view>[A-Z]{2,6})(?:[_\-\s]|$)",
    re.IGNORECASE,
)


def identity_from_patient_id(patient_id) -> tuple[str, str, str]:
    """(patient, laterality, view) from a CBIS-DDSM-style PatientID, else ("", "", "").

    >>> identity_from_patient_id("Mass-Test_P_00173_LEFT_CC")
    ('P_00173', 'L', 'CC')
    """
    if not patient_id:
        return "", "", ""
    m = _CBIS_ID.search(str(patient_id).strip())
    if m is None:
        return "", "", ""
    view = normalise_view(m.group("view"))
    return m.group("patient").upper(), normalise_laterality(m.group("side")), view


# Views that a file or folder name may spell as a word of its own ("A_0002_1.RIGHT_MLO.png",
# "..._MG_R_CC_ANON.dcm", "L-MLO.png", "RCC.tif"). Words that are also English or common
# abbreviations ("AT", "ISO", "TAN", "FB", "CV", "RL", "RM") are left out: a folder "at/"
# must not make every image an axillary-tail view.
_PATH_VIEWS = {"CC", "MLO", "ML", "LM", "LMO", "XCCL", "XCCM"}
_SIDE_GLUED = re.compile(r"[LR](CC|MLO|XCCL|XCCM)")


def _path_parts(rel_path) -> list[str]:
    """The folder and file names of a path, with either separator."""
    return [p for p in re.split(r"[/\\]", str(rel_path)) if p]


def view_from_path(rel_path) -> str:
    """The view spelled in a file's name, else in its nearest folder name that spells one;
    "" when none does or one name spells two different views.

    Film archives converted to PNG (DDSM, MIAS-style sets, CBIS-DDSM folders) keep the view
    only in the name; without it an MLO film keeps its pectoral muscle in the tissue mask.

    >>> view_from_path("train/A_0002_1.RIGHT_MLO.png")
    'MLO'
    >>> view_from_path("Mass-Training_P_00001_LEFT_CC/1-1.dcm")
    'CC'
    """
    parts = _path_parts(rel_path)
    if not parts:
        return ""
    parts[-1] = parts[-1].rsplit(".", 1)[0]  # the file's extension
    for part in reversed(parts):
        found = set()
        for word in re.split(r"[^A-Za-z]+", part):
            word = word.upper()
            if word in _PATH_VIEWS:
                found.add(word)
            elif (m := _SIDE_GLUED.fullmatch(word)) is not None:
                found.add(m.group(1))
        if len(found) == 1:
            return found.pop()
        if found:
            return ""
    return ""


def patient_from_path(rel_path) -> str:
    """The patient of a CBIS-DDSM-style name in the path ("Calc-Test_P_00038_LEFT_CC/..."),
    else "": the views of one woman converted to PNG still share one patient key."""
    for part in reversed(_path_parts(rel_path)):
        patient, _, _ = identity_from_patient_id(part.rsplit(".", 1)[0])
        if patient:
            return patient
    return ""
