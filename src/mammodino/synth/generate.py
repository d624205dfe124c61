"""``generate_phantoms``: a folder of synthetic FFDM + DBT DICOM files and their labels.

Layout of ``out``::

    out/ffdm/ffdm_000000.dcm ...   4 views per patient: L-CC, L-MLO, R-CC, R-MLO
    out/dbt/dbt_000000.dcm ...     one multi-frame volume per patient (its own patients)
    out/labels.csv                 one row per file (columns: LABEL_COLUMNS)
    out/.mammodino-synth.json      the parameters, so a re-run can tell its own output

Cases:
- FFDM: ``ceil(n_ffdm / 4)`` patients (n_ffdm is rounded up to whole patients). A patient has
  one density class for both breasts (A-D in shuffled blocks of four patients, so classes are
  balanced even in small sets); 90 % of patients have a lesion in
  exactly one breast (so ~45 % of breasts and images are positive, balanced for probes),
  seen in both views of that breast. The two views are independent draws of the same breast
  (same size, density and lesion type/size/depth behind the nipple; texture and the lesion's
  height and vertical position drawn per view): a compressed breast is a different shape in
  each view, so one rigid 3D phantom would not be more truthful than this.
- DBT: each volume is its own patient, random side and view; density in shuffled blocks of
  four, lesion in shuffled blocks of two (exactly half of each pair of volumes).

Determinism: every case has its own ``numpy`` generator seeded by ``(seed, kind, case)``, so
the files do not depend on the number of workers or the order they finish in; UIDs are
hashes of the seed and the image id. Same seed, same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mammodino.errors import UserError
from mammodino.synth import dicom_writer as dw
from mammodino.synth.geometry import BreastShape, thickness_profile, view_geometry
from mammodino.data.qc import box_text
from mammodino.synth import imaging
from mammodino.synth.imaging import ffdm_projection, presentation, to_display
from mammodino.synth.lesions import LesionSpec, draw_spec, insert_lesion
from mammodino.synth.markers import burn_in_markers, crooked_scan, film_layout, film_scan
from mammodino.synth.phantom import DENSITY_FRACTION, MU_FAT, build_phantom

LABEL_COLUMNS = [
    "image_id",
    "path",
    "patient_id",
    "laterality",
    "view",
    "kind",
    "density",
    "lesion",
    "lesion_type",
    "lesion_box",
    "lesion_slices",
    "breast_box",  # ground truth: x0 y0 x1 y1 (x1, y1 exclusive) of the breast in the stored image
    "breast_mask",  # film phantoms: PNG of the ground-truth breast mask (255 = breast), relative to OUT (.truth/)
]
MARKER = ".mammodino-synth.json"
GENERATOR_VERSION = 2  # 2: DBT slice processing (per-slice detail and noise)
DENSITIES = ("A", "B", "C", "D")
FIELD_MM = 230.0  # detector height covered by the image rows (FFDM and DBT)
PHOTONS_PER_MM2 = 15000 / 0.45**2  # quanta reaching the detector in air (FFDM dose)
FULL_SCALE = 2.1  # presentation units at the top of the stored range (fat ~1, gland ~1.75)
TONE_GAMMA = 2.2  # presentation tone curve: fat dark grey, dense tissue near white
FFDM_LAYERS = 12
P_PATIENT_LESION = 0.9
DBT_BITS = 12
# files a run writes (".name.tmp" while a write is in flight, left behind if it was killed)
_OWN_FILE = re.compile(
    r"^(labels\.csv(\.tmp)?|\.mammodino-synth\.json(\.tmp)?"
    r"|ffdm/\.?ffdm_\d{6}\.dcm(\.tmp)?|dbt/\.?dbt_\d{6}\.dcm(\.tmp)?|\.truth/\.?ffdm_\d{6}\.png(\.tmp)?"
    r"|ffdm/rois/\.?ffdm_\d{6}_\d+_(mask|crop)\.dcm(\.tmp)?)$"  # a film lesion's CBIS-style annotations
)


@dataclass(frozen=True)
class Settings:
    """Everything that determines the output (stored in the marker file)."""

    n_ffdm: int
    n_dbt: int
    seed: int
    ffdm_shape: tuple[int, int]
    dbt_shape: tuple[int, int, int]
    dbt_projections: int
    dbt_half_angle_deg: float
    patient_name: str | None
    patient_id_prefix: str
    mass_scale: float = 1.0
    detector_fov: bool = False
    film: bool = False
    dbt_detail: float = 1.5
    dbt_slice_noise: float = 2.0
    film_tilt: float = 0.0

    def as_json(self) -> dict:
        d = asdict(self)
        d["ffdm_shape"] = list(self.ffdm_shape)
        d["dbt_shape"] = list(self.dbt_shape)
        for key in ("detector_fov", "film", "film_tilt"):
            if not d[key]:  # folders written before the option keep matching
                del d[key]
        return {"generator": "mammodino.synth", "version": GENERATOR_VERSION, "params": d}


# ----------------------------------------------------------------------------- case drawing


def _rng(settings: Settings, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([settings.seed, *key]))


def _balanced(settings: Settings, stream: int, index: int, values: tuple):
    """``values[...]`` for case ``index``, drawn as shuffled blocks holding each value once, so
    even a handful of cases covers the classes evenly (a plain draw would not)."""
    block, pos = divmod(index, len(values))
    order = _rng(settings, 9, stream, block).permutation(len(values))
    return values[int(order[pos])]


# Film phantoms: 16- and 12-bit scans (Howtek- and Lumisys-like), CBIS-DDSM's PatientID kinds.
FILM_BITS = (16, 12)
FILM_KINDS = (("Mass", "Training"), ("Calc", "Training"), ("Mass", "Test"), ("Calc", "Test"))

# Detector-FOV phantoms: a slightly smaller breast (35-60 % of the image) leaves room for labels.
FOV_SHAPE_SCALE = 0.92


def _draw_shape(rng: np.random.Generator, base: BreastShape | None = None, scale: float = 1.0) -> BreastShape:
    if base is None:
        return BreastShape(
            half_height=float(rng.uniform(0.33, 0.44)) * scale,
            depth=float(rng.uniform(0.60, 0.84)) * scale,
            squareness=float(rng.uniform(2.0, 2.7)),
            thickness_mm=float(rng.uniform(38.0, 65.0)),
        )
    # the other breast of the same woman: nearly the same size
    return BreastShape(
        half_height=base.half_height * float(rng.uniform(0.96, 1.04)),
        depth=base.depth * float(rng.uniform(0.95, 1.05)),
        squareness=base.squareness,
        thickness_mm=base.thickness_mm * float(rng.uniform(0.95, 1.05)),
    )


def _patient_ident(settings: Settings, number: int, kind: str, image_id: str, instance: int) -> dw.Identity:
    patient_id = f"{settings.patient_id_prefix}{number:04d}"
    name = settings.patient_name or f"PHANTOM^{number:04d}"
    day = int(_rng(settings, 7, number).integers(0, 3 * 365))
    date = np.datetime64("2021-01-04") + np.timedelta64(day, "D")
    seed = settings.seed
    return dw.Identity(
        patient_name=name,
        patient_id=patient_id,
        study_uid=dw.make_uid(seed, "study", kind, number),
        series_uid=dw.make_uid(seed, "series", image_id),
        sop_uid=dw.make_uid(seed, "sop", image_id),
        frame_of_reference_uid=dw.make_uid(seed, "for", image_id),
        study_date=str(date).replace("-", ""),
        accession=f"SYN{number:06d}",
        instance_number=instance,
    )


def _write_lesion_annotations(out: Path, seed: int, image_id: str, film: np.ndarray, bits: int,
                              box: tuple[int, int, int, int], ident: dw.Identity, px: float) -> None:
    """The lesion's ROI mask and cropped image beside its film, as CBIS-DDSM ships them
    (``ffdm/rois/``): index must skip both with a reason, not index them as mammograms."""
    h, w = film.shape
    x0, y0, x1, y1 = box
    mask = np.zeros((h, w), np.uint16)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    cy, cx, ry, rx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2, max(1.0, (y1 - y0) / 2), max(1.0, (x1 - x0) / 2)
    mask[y0:y1, x0:x1] = np.where(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0, 255, 0)
    m = max(8, (x1 - x0) // 4)
    crop = film[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)]
    for suffix, pixels, bits_stored, series in (("mask", mask, 8, dw.ROI_MASK_SERIES),
                                                ("crop", crop, bits, dw.CROP_SERIES)):
        name = f"{image_id}_1_{suffix}"
        roi = dataclasses.replace(ident, patient_id=f"{ident.patient_id}_1",
                                  series_uid=dw.make_uid(seed, "series", name), sop_uid=dw.make_uid(seed, "sop", name))
        dw.write_film(out / "ffdm" / "rois" / f"{name}.dcm", np.ascontiguousarray(pixels), bits_stored, roi, px,
                      rle=False, series=series)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _write_mask_png(path: Path, mask: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise UserError(f"{path}: cannot encode the mask")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def _mirror_box(box: tuple[int, int, int, int], width: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (width - x1, y0, width - x0, y1)


def _pixel_mm(rows: int) -> float:
    return FIELD_MM / rows


def _render_view(
    rng: np.random.Generator,
    shape: BreastShape,
    view: str,
    shape_hw: tuple[int, int],
    n_layers: int,
    gland_fraction: float,
    spec: LesionSpec | None,
    coarse: int,
):
    px = _pixel_mm(shape_hw[0])
    geom = view_geometry(view, shape_hw, px, shape, rng)
    ph = build_phantom(geom, n_layers, gland_fraction, rng, coarse=coarse)
    placed = insert_lesion(ph, spec, rng) if spec is not None else None
    return geom, ph, placed


def _ffdm_patient(settings: Settings, out: str, patient: int) -> list[dict]:
    """Write the 4 views of FFDM patient ``patient``; returns their label rows."""
    rng = _rng(settings, 0, patient)
    density = _balanced(settings, 0, patient, DENSITIES)
    gland = DENSITY_FRACTION[density] * float(rng.uniform(0.85, 1.15))
    lesion_side = ("L", "R")[int(rng.integers(2))] if rng.random() < P_PATIENT_LESION else None
    spec = draw_spec(rng, mass_scale=settings.mass_scale) if lesion_side else None
    style = dw.STYLES[patient % len(dw.STYLES)]
    small = settings.detector_fov or settings.film
    base = _draw_shape(rng, scale=FOV_SHAPE_SCALE if small else 1.0)
    number = patient + 1
    rows = []
    h, w = settings.ffdm_shape
    px = _pixel_mm(h)
    photons = PHOTONS_PER_MM2 * px * px
    for s, side in enumerate(("L", "R")):
        shape = base if s == 0 else _draw_shape(rng, base)
        side_spec = spec if side == lesion_side else None
        for v, view in enumerate(("CC", "MLO")):
            idx = patient * 4 + s * 2 + v
            image_id = f"ffdm_{idx:06d}"
            vrng = _rng(settings, 0, patient, 1 + s, v)
            layout = film_layout((h, w), vrng) if settings.film else None
            render_hw = layout.inner_shape((h, w)) if layout else (h, w)
            geom, ph, placed = _render_view(vrng, shape, view, render_hw, FFDM_LAYERS, gland, side_spec, coarse=2)
            log_img = ffdm_projection(ph.mu, ph.dz_mm, photons, vrng)
            thick = thickness_profile(geom.dist_mm, geom.thickness_mm)
            pres = presentation(log_img, thick, geom.thickness_mm, MU_FAT)
            img = to_display(pres, FULL_SCALE, style.bits_stored, TONE_GAMMA)
            breast = geom.inside
            box = placed.box if placed else None
            ident = _patient_ident(settings, number, "ffdm", image_id, instance=s * 2 + v + 1)
            rel = f"ffdm/{image_id}.dcm"
            mask_rel = ""
            if layout is not None:  # a scanned film, Secondary Capture, side and view in PatientID only
                film_bits = FILM_BITS[(patient + s + v) % len(FILM_BITS)]
                inner = img.astype(np.float32) / np.float32((1 << style.bits_stored) - 1)
                img, breast = film_scan(inner, breast, layout, side, view, vrng, bits=film_bits)
                if box:
                    box = (box[0] + layout.chest, box[1] + layout.top, box[2] + layout.chest, box[3] + layout.top)
                    box = _mirror_box(box, w) if side == "R" else box
                if settings.film_tilt:  # drawn last: untilted sets keep every other draw
                    turn = float(vrng.uniform(1.0, settings.film_tilt)) * (1 if vrng.random() < 0.5 else -1)
                    img, breast, box = crooked_scan(img, breast, box, turn)
                ident = dataclasses.replace(ident, patient_id=dw.film_patient_id(
                    number, side, view, *FILM_KINDS[patient % len(FILM_KINDS)]))
                dw.write_film(Path(out) / rel, np.ascontiguousarray(img), film_bits, ident, px,
                              rle=(s * 2 + v) % 2 == 0)
                mask_rel = f".truth/{image_id}.png"
                _write_mask_png(Path(out) / mask_rel, breast)
                if box:
                    _write_lesion_annotations(Path(out), settings.seed, image_id, img, film_bits, box, ident, px)
            else:
                if side == "R":  # chest wall on the right, as a right breast is displayed
                    img, breast = img[:, ::-1], breast[:, ::-1]
                    box = _mirror_box(box, w) if box else None
                if settings.detector_fov:
                    img = burn_in_markers(img, breast, side, view, vrng)
                dw.write_ffdm(Path(out) / rel, np.ascontiguousarray(img), breast, style, ident, side, view, px)
            rows.append(
                {
                    "image_id": image_id,
                    "path": rel,
                    "patient_id": f"P_{number:05d}" if layout is not None else ident.patient_id,
                    "laterality": side,
                    "view": view,
                    "kind": "ffdm",
                    "density": density,
                    "lesion": 1 if side_spec else 0,
                    "lesion_type": side_spec.kind if side_spec else "none",
                    "lesion_box": box_text(box),
                    "lesion_slices": "",
                    "breast_box": box_text(_mask_box(breast)),
                    "breast_mask": mask_rel,
                }
            )
    return rows


def _dbt_case(settings: Settings, out: str, index: int, n_ffdm_patients: int) -> list[dict]:
    """Write DBT volume ``index`` (its own patient); returns its label row."""
    rng = _rng(settings, 1, index)
    density = _balanced(settings, 1, index, DENSITIES)
    gland = DENSITY_FRACTION[density] * float(rng.uniform(0.85, 1.15))
    side = ("L", "R")[int(rng.integers(2))]
    view = ("CC", "MLO")[int(rng.integers(2))]
    spec = draw_spec(rng, mass_scale=settings.mass_scale) if _balanced(settings, 2, index, (True, False)) else None
    shape = _draw_shape(rng, scale=FOV_SHAPE_SCALE if settings.detector_fov else 1.0)
    n_slices, h, w = settings.dbt_shape
    px = _pixel_mm(h)
    geom, ph, placed = _render_view(rng, shape, view, (h, w), n_slices, gland, spec, coarse=1)
    angles = imaging.dbt_angles(settings.dbt_projections, settings.dbt_half_angle_deg)
    photons = PHOTONS_PER_MM2 * px * px
    projections = imaging.dbt_projections(ph.mu, ph.dz_mm, px, angles, photons, rng)
    heights = (np.arange(n_slices) + 0.5) * ph.dz_mm
    vol = imaging.shift_and_add(projections, angles, heights, px)
    vol = imaging.slice_processing(vol, photons, rng, detail=settings.dbt_detail, noise=settings.dbt_slice_noise)
    thick = thickness_profile(geom.dist_mm, geom.thickness_mm)
    stored = np.empty(vol.shape, dtype=np.uint16)
    for j in range(n_slices):
        stored[j] = to_display(presentation(vol[j], thick, geom.thickness_mm, MU_FAT), FULL_SCALE, DBT_BITS, TONE_GAMMA)
    breast = geom.inside
    box = placed.box if placed else None
    slices = ""
    if placed:
        z0 = int(np.clip(math.floor(placed.z_mm[0] / ph.dz_mm), 0, n_slices - 1))
        z1 = int(np.clip(math.floor(placed.z_mm[1] / ph.dz_mm), 0, n_slices - 1))
        slices = f"{z0} {z1}"
    if side == "R":
        stored, breast = stored[:, :, ::-1], breast[:, ::-1]
        box = _mirror_box(box, w) if box else None
    if settings.detector_fov:
        # the same label at the same place on every slice (a burned-in label is not in the breast)
        seed = int(_rng(settings, 1, index, 1).integers(2**32))
        stored = np.stack([burn_in_markers(sl, breast, side, view, np.random.default_rng(seed)) for sl in stored])
    image_id = f"dbt_{index:06d}"
    number = n_ffdm_patients + index + 1
    ident = _patient_ident(settings, number, "dbt", image_id, instance=1)
    rel = f"dbt/{image_id}.dcm"
    dw.write_dbt(Path(out) / rel, np.ascontiguousarray(stored), breast, DBT_BITS, ident, side, view, px, ph.dz_mm)
    return [
        {
            "image_id": image_id,
            "path": rel,
            "patient_id": ident.patient_id,
            "laterality": side,
            "view": view,
            "kind": "dbt",
            "density": density,
            "lesion": 1 if spec else 0,
            "lesion_type": spec.kind if spec else "none",
            "lesion_box": box_text(box),
            "lesion_slices": slices,
            "breast_box": box_text(_mask_box(breast)),
            "breast_mask": "",
        }
    ]


def _run_job(job: tuple) -> list[dict]:
    kind, settings, out, index, n_patients = job
    if kind == "ffdm":
        return _ffdm_patient(settings, out, index)
    return _dbt_case(settings, out, index, n_patients)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------- the folder


def _own_files(out: Path) -> tuple[list[Path], list[Path]]:
    """(files a previous run of ours may have written, anything else) under ``out``."""
    own, foreign = [], []
    for p in sorted(out.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(out).as_posix()
        (own if _OWN_FILE.match(rel) else foreign).append(p)
    return own, foreign


def _check_folder(out: Path, settings: Settings) -> bool:
    """Refuse to touch anything that is not our own output with the same parameters.

    Returns True when ``out`` already holds the complete output for these settings.
    """
    if not out.exists():
        return False
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    own, foreign = _own_files(out)
    if not own and not foreign:
        return False
    marker = out / MARKER
    if not marker.exists():
        example = (foreign or own)[0].relative_to(out)
        raise UserError(
            f"{out}: not empty and not written by `mammodino synth` (e.g. {example}); "
            "give a new or empty folder (nothing was written)"
        )
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{marker}: unreadable ({exc}); give a new or empty folder") from exc
    want = settings.as_json()
    if info.get("params") != want["params"] or info.get("version") != want["version"]:
        old = info.get("params", {})
        diff = ", ".join(
            f"{k}: {old.get(k)!r} -> {v!r}" for k, v in want["params"].items() if old.get(k) != v
        ) or f"generator version {info.get('version')} -> {want['version']}"
        raise UserError(
            f"{out}: holds phantoms made with other parameters ({diff}); "
            "give a new folder or delete this one yourself (nothing was written)"
        )
    if foreign:
        raise UserError(
            f"{out}: holds files that `mammodino synth` did not write (e.g. {foreign[0].relative_to(out)}); "
            "give a new or empty folder (nothing was written)"
        )
    labels = out / "labels.csv"
    if info.get("complete") and labels.exists():
        with labels.open(newline="") as fh:
            listed = [row["path"] for row in csv.DictReader(fh)]
        if all((out / p).exists() for p in listed):
            return True
    return False


def _write_marker(out: Path, settings: Settings, complete: bool) -> None:
    info = settings.as_json()
    info["complete"] = complete
    tmp = out / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / MARKER)


def generate_phantoms(
    out: str | Path,
    n_ffdm: int,
    n_dbt: int,
    seed: int = 0,
    *,
    workers: int = 1,
    ffdm_shape: tuple[int, int] = (512, 400),
    dbt_shape: tuple[int, int, int] = (32, 256, 200),
    dbt_projections: int = 15,
    dbt_half_angle_deg: float = 25.0,
    patient_name: str | None = None,
    patient_id_prefix: str | None = None,
    progress: bool = False,
    mass_scale: float = 1.0,
    detector_fov: bool = False,
    film: bool = False,
    dbt_detail: float = 1.5,
    dbt_slice_noise: float = 2.0,
    film_tilt: float = 0.0,
) -> Path:
    """Write ``n_ffdm`` FFDM images (rounded up to whole 4-view patients) and ``n_dbt`` DBT
    volumes as DICOM under ``out``, plus ``out/labels.csv``; returns the labels path.

    Args:
        out: output folder; must be new, empty, or this function's own output made with the
            same arguments (then it is reused when complete, regenerated otherwise). Anything
            else is refused with a :class:`UserError` before a byte is written.
        n_ffdm, n_dbt: numbers of FFDM images and DBT volumes.
        seed: same seed and arguments, byte-identical files and labels.
        workers: processes (results do not depend on it).
        ffdm_shape: (rows, cols) of an FFDM image; the rows span 230 mm.
        dbt_shape: (slices, rows, cols) of a DBT volume.
        dbt_projections, dbt_half_angle_deg: acquisition arc. Default: 15 projections over
            +-25 deg (a wide, Siemens-like arc): our 0.9 mm DBT pixels are ~10x coarser than a
            real detector's, and a wide arc keeps out-of-plane blur, counted in pixels, in a
            realistic range. Hologic-like: 15 over +-7.5; GE-like: 9 over +-12.5.
        patient_name: PatientName written in every file (default ``PHANTOM^<number>``); for
            privacy tests that need a realistic name such as ``DOE^JANE``.
        patient_id_prefix: PatientID = prefix + 4-digit patient number (default ``PHANTOM-``,
            e.g. ``MRN-42`` gives ``MRN-420001``). File names never contain it.
        progress: show a progress bar on stderr.
        mass_scale: multiplies mass diameters (default 5-12 % of the breast). The demo uses
            larger masses so that a few CPU-minutes of pretraining can learn them.
        detector_fov: a detector's field of view: the breast covers ~35-60 % of the image
            and a burned-in laterality/view label and a lead marker sit in the background
            (:mod:`mammodino.synth.markers`), as on a real mammogram.
        dbt_detail, dbt_slice_noise: DBT slice processing
            (:func:`mammodino.synth.imaging.slice_processing`): detail gain of the in-focus
            layer and independent per-slice noise (x the FFDM quantum noise). 0 and 0 give
            plain shift-and-add, whose adjacent slices are near copies.
        film: FFDM images become digitised films as CBIS-DDSM stores them (Secondary
            Capture, 16- or 12-bit MONOCHROME2, RLE Lossless for every other view, no
            laterality/view tags: ``PatientID`` = ``Mass-Training_P_00001_LEFT_CC``), with
            bright unexposed borders on 1-3 sides, a scanner edge strip, a burned-in label,
            lead markers, tape and scanner noise (:func:`mammodino.synth.markers.film_scan`);
            the ground-truth breast mask goes to ``.truth/<image_id>.png`` (a hidden folder,
            so ``mammodino index`` never takes it for an image) and its box to the
            labels' ``breast_box``. Films have patient ids ``P_<5 digits>`` in the labels
            (``patient_id_prefix`` does not apply). DBT volumes stay DBT.
        film_tilt: with ``film``, every film laid crooked on a dark scanner bed, turned by
            1 to ``film_tilt`` degrees either way (:func:`mammodino.synth.markers.crooked_scan`);
            masks and lesion boxes turn with it (0: upright, as before).

    Example:
        >>> labels = generate_phantoms("/tmp/phantoms", n_ffdm=12, n_dbt=2, seed=0)  # doctest: +SKIP
    """
    out = Path(out)
    settings = _settings(n_ffdm, n_dbt, seed, ffdm_shape, dbt_shape, dbt_projections, dbt_half_angle_deg,
                         patient_name, patient_id_prefix, mass_scale, detector_fov, film, dbt_detail,
                         dbt_slice_noise, film_tilt)
    labels_path = out / "labels.csv"
    if _check_folder(out, settings):
        return labels_path
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, settings, complete=False)
    n_patients = math.ceil(n_ffdm / 4)
    jobs = [("ffdm", settings, str(out), p, n_patients) for p in range(n_patients)]
    jobs += [("dbt", settings, str(out), i, n_patients) for i in range(n_dbt)]
    rows = _run_jobs(jobs, workers, total_images=4 * n_patients + n_dbt, progress=progress)
    _write_labels(labels_path, rows)
    _write_marker(out, settings, complete=True)
    return labels_path


def _settings(n_ffdm, n_dbt, seed, ffdm_shape, dbt_shape, dbt_projections, dbt_half_angle_deg,
              patient_name, patient_id_prefix, mass_scale, detector_fov, film=False, dbt_detail=1.5,
              dbt_slice_noise=2.0, film_tilt=0.0) -> Settings:
    """The arguments checked (a :class:`UserError` naming the bad one) and frozen."""
    if n_ffdm < 0 or n_dbt < 0:
        raise UserError(f"n_ffdm and n_dbt must be >= 0 (got {n_ffdm}, {n_dbt})")
    if n_ffdm == 0 and n_dbt == 0:
        raise UserError("nothing to generate: n_ffdm and n_dbt are both 0")
    if len(ffdm_shape) != 2 or min(ffdm_shape) < 64 or len(dbt_shape) != 3 or min(dbt_shape[1:]) < 64 \
            or dbt_shape[0] < 4:
        raise UserError(
            f"image shapes too small: ffdm_shape={ffdm_shape} (>= 64x64), dbt_shape={dbt_shape} (>= 4x64x64)"
        )
    if dbt_projections < 2 or not (0 < dbt_half_angle_deg < 45):
        raise UserError(
            "DBT arc needs >= 2 projections and 0 < half angle < 45 deg "
            f"(got {dbt_projections}, {dbt_half_angle_deg})"
        )
    if not 0 < mass_scale <= 4:
        raise UserError(f"mass_scale must be in (0, 4], got {mass_scale}")
    if not (0 <= dbt_detail <= 10 and 0 <= dbt_slice_noise <= 10):
        raise UserError(f"dbt_detail and dbt_slice_noise must be in [0, 10] (got {dbt_detail}, {dbt_slice_noise})")
    if not 0 <= film_tilt <= 12 or (film_tilt and (not film or film_tilt < 1)):
        raise UserError(f"film_tilt must be 0 or 1-12 degrees, with film phantoms (got {film_tilt}, film={film})")
    return Settings(
        n_ffdm=int(n_ffdm),
        n_dbt=int(n_dbt),
        seed=int(seed),
        ffdm_shape=(int(ffdm_shape[0]), int(ffdm_shape[1])),
        dbt_shape=(int(dbt_shape[0]), int(dbt_shape[1]), int(dbt_shape[2])),
        dbt_projections=int(dbt_projections),
        dbt_half_angle_deg=float(dbt_half_angle_deg),
        patient_name=patient_name,
        patient_id_prefix="PHANTOM-" if patient_id_prefix is None else str(patient_id_prefix),
        mass_scale=float(mass_scale),
        detector_fov=bool(detector_fov),
        film=bool(film),
        dbt_detail=float(dbt_detail),
        dbt_slice_noise=float(dbt_slice_noise),
        film_tilt=float(film_tilt),
    )


def _run_jobs(jobs: list[tuple], workers: int, total_images: int, progress: bool) -> list[dict]:
    """Label rows of every job, in this process or a spawn pool (same rows either way)."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_images, unit="img", desc="synth", dynamic_ncols=True)
    rows: list[dict] = []
    try:
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                got = _run_job(job)
                rows += got
                if bar:
                    bar.update(len(got))
        else:
            import multiprocessing as mp

            # spawn: the workers never inherit a parent's thread pools (torch, OpenCV)
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
                # DBT cases are the slowest: start them first so the pool ends evenly
                order = sorted(jobs, key=lambda j: j[0] != "dbt")
                futures = [pool.submit(_run_job, job) for job in order]
                for fut in as_completed(futures):
                    got = fut.result()
                    rows += got
                    if bar:
                        bar.update(len(got))
    finally:
        if bar:
            bar.close()
    return rows


def _write_labels(labels_path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["kind"] != "ffdm", r["image_id"]))
    tmp = labels_path.with_name("labels.csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, labels_path)


def read_labels(path: str | Path) -> list[dict]:
    """Rows of a ``labels.csv`` written by :func:`generate_phantoms` (all values strings)."""
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))
