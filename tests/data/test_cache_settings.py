"""One geometry per cache: every setting that shapes the cached pixels is recorded and compared."""

import json

import pytest

from mammodino.data.cache_settings import GEOMETRY, SETTINGS_NAME, check_or_record, read_settings
from mammodino.errors import UserError

BASE = {"size": 128, "margin": 0.02, "pectoral": "removed", "include_for_processing": False, "whole_image": False}


def test_every_geometry_key_is_compared(tmp_path):
    check_or_record(tmp_path, BASE, has_rows=False)
    assert read_settings(tmp_path) == BASE
    changed = {"size": 450, "margin": 0.1, "pectoral": "kept", "include_for_processing": True, "whole_image": True}
    assert set(changed) == set(GEOMETRY)
    for key, value in changed.items():
        with pytest.raises(UserError, match=f"{key}: cache {BASE[key]!r}, this run {value!r}"):
            check_or_record(tmp_path, {**BASE, key: value}, has_rows=True)
    check_or_record(tmp_path, dict(BASE), has_rows=True)  # the same settings: fine


def test_a_settings_file_from_before_whole_image_was_recorded_means_cropped(tmp_path):
    old = {k: v for k, v in BASE.items() if k != "whole_image"}
    (tmp_path / SETTINGS_NAME).write_text(json.dumps({"format": "mammodino-index-settings-1", "settings": old}))
    check_or_record(tmp_path, BASE, has_rows=True)
    with pytest.raises(UserError, match="whole_image: cache False, this run True"):
        check_or_record(tmp_path, {**BASE, "whole_image": True}, has_rows=True)


def test_a_settings_file_from_before_the_pectoral_default_keeps_its_meaning(tmp_path):
    """Older files recorded ``remove_pectoral``: False (every cache made without the flag) is
    today's --keep-pectoral; True cut the crop to the muscle-free mask, which no setting repeats."""
    old = {k: v for k, v in BASE.items() if k != "pectoral"}
    (tmp_path / SETTINGS_NAME).write_text(json.dumps({"format": "mammodino-index-settings-1",
                                                      "settings": {**old, "remove_pectoral": False}}))
    check_or_record(tmp_path, {**BASE, "pectoral": "kept"}, has_rows=True)
    with pytest.raises(UserError, match="(?s)pectoral: cache 'kept', this run 'removed'.*--keep-pectoral"):
        check_or_record(tmp_path, BASE, has_rows=True)
    (tmp_path / SETTINGS_NAME).write_text(json.dumps({"format": "mammodino-index-settings-1",
                                                      "settings": {**old, "remove_pectoral": True}}))
    for pectoral in ("kept", "removed"):
        with pytest.raises(UserError, match="pectoral: cache 'removed from mask and crop"):
            check_or_record(tmp_path, {**BASE, "pectoral": pectoral}, has_rows=True)
