"""The phantoms through `mammodino index`: every file must be a usable cache entry."""

from synth_helpers import labels_of

from mammodino.data.cache import open_cache, read_manifest, with_sources


def test_indexing_the_phantoms_gives_every_file_status_ok(phantom_dir, phantom_cache):
    rows = with_sources(phantom_cache, read_manifest(phantom_cache, only_ok=False))
    labels = {r["image_id"]: r for r in labels_of(phantom_dir)}
    assert len(rows) == len(labels) == 14
    assert all(r["status"] == "ok" for r in rows), [(r["stem"], r["reason"]) for r in rows if r["status"] != "ok"]
    for r in rows:
        lab = labels[r["stem"]]
        assert r["kind"] == lab["kind"]
        assert r["laterality"] == lab["laterality"] and r["view"] == lab["view"]
        assert r["laterality_source"] == "tag"
        assert r["slices"] == (32 if lab["kind"] == "dbt" else 1)
        assert r["flipped"] == (1 if lab["laterality"] == "R" else 0)
        assert 0.3 < r["tissue_fraction"] < 0.9
    for img in open_cache(phantom_cache):
        mask = img.breast_mask()
        assert 0.5 < mask.mean() <= 1.0  # cropped to the breast
        # chest wall on the left after indexing: the left edge is breast (on MLO, the pectoral
        # muscle is out of the tissue mask, so part of that edge is not), the right edge is not
        left, right = mask[:, :3].mean(), mask[:, -3:].mean()
        assert left > (0.5 if img.row["view"] == "CC" else 0.3) and left > right + 0.2, (img.row["view"], left, right)
