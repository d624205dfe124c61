"""Every breast box of two film phantom sets that caught a segmentation fault after the
rules had been developed on the seed-0 set (benchmarks/film_qc.py): seed 1 at 1200 x 720,
where a fog corner taken out left a thin band along a film border's inner edge behind
(ffdm_000034, box IoU 0.858), and seed 1 at 600 x 360, where a dark scanner line at the
very edge hid a bright top border from the border walk and the border became breast
(ffdm_000035, box IoU 0.648, and it passed QC)."""

from __future__ import annotations

import pytest

from mammodino.data.cache_geometry import box_iou
from mammodino.io.dicom_reader import read_dicom
from mammodino.synth.generate import generate_phantoms, read_labels
from mammodino.tissue.segmentation import segment


@pytest.mark.parametrize("shape", [(1200, 720), (600, 360)], ids=["1200x720", "600x360"])
def test_every_box_of_the_seed_1_film_set(tmp_path, shape):
    out = generate_phantoms(tmp_path / "films", n_ffdm=40, n_dbt=0, seed=1, ffdm_shape=shape, film=True,
                            workers=2).parent
    ious = {}
    for r in read_labels(out / "labels.csv"):
        img = read_dicom(out / r["path"]).reference_plane()
        truth = tuple(int(v) for v in r["breast_box"].split())
        ious[r["image_id"]] = box_iou(segment(img, view=r["view"]).box(), truth)
    worst = sorted(ious.items(), key=lambda kv: kv[1])[:3]
    assert min(ious.values()) >= 0.9, worst
