"""The index settings a cache was built with, recorded in ``OUT/index_settings.json``.

Re-indexing into a cache with another ``--size`` silently mixed long sides (128 and ~450
px) in one cache, because nothing recorded the first run's size. The settings that shape
the cached pixels are therefore written on the first run and compared on every later one:
a resumed or extended cache keeps one geometry, or the run is refused with both values.
The file holds no path and nothing about the sources, so it can travel with the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from mammodino import atomic
from mammodino.errors import UserError

SETTINGS_NAME = "index_settings.json"
FORMAT = "mammodino-index-settings-1"
# settings that change the cached pixels; a cache holds one value of each. ``whole_image``:
# the whole field of view instead of the breast box (``index --whole-image``).
# ``pectoral``: "removed" (the MLO muscle out of the tissue mask, the crop of the whole
# breast: index's default) or "kept" (``--keep-pectoral``).
GEOMETRY = ("size", "margin", "pectoral", "include_for_processing", "whole_image")
# what a settings file written before a key was recorded meant by its absence
DEFAULTS = {"whole_image": False}
# Files written before ``pectoral`` recorded ``remove_pectoral``: False was "kept"; True also
# cut the crop to the breast without its muscle, which no current setting reproduces.
OLD_PECTORAL = {False: "kept", True: "removed from mask and crop (before December 2026)"}


def pectoral_setting(remove_pectoral: bool) -> str:
    return "removed" if remove_pectoral else "kept"


def read_settings(cache_dir: str | Path) -> dict | None:
    path = Path(cache_dir) / SETTINGS_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:100_000])
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: unreadable index settings ({type(exc).__name__}); "
                        "index into a new folder") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise UserError(f"{path}: not a mammodino index settings file")
    return data["settings"]


def check_or_record(cache_dir: str | Path, settings: dict, has_rows: bool, log=print) -> None:
    """Record ``settings`` for a new cache; refuse a run whose geometry differs from the
    recorded one. A cache built before settings were recorded gets this run's settings
    recorded, with a note that its older rows could not be checked."""
    cache_dir = Path(cache_dir)
    recorded = read_settings(cache_dir)
    if recorded is None:
        if has_rows:
            log(f"note: {cache_dir} has no {SETTINGS_NAME} (older version); recording this run's settings, "
                "the rows indexed before could not be checked against them")
        _write(cache_dir, settings)
        return
    recorded = {**DEFAULTS, **recorded}
    if "pectoral" not in recorded and "remove_pectoral" in recorded:
        recorded["pectoral"] = OLD_PECTORAL.get(bool(recorded["remove_pectoral"]), "unknown")
    diffs = [f"{k}: cache {recorded.get(k)!r}, this run {settings.get(k)!r}"
             for k in GEOMETRY if k in settings and recorded.get(k) != settings.get(k)]
    if diffs:
        raise UserError(f"{cache_dir} was indexed with other settings, and one cache holds one geometry:\n  "
                        + "\n  ".join(diffs) + "\nuse the cache's settings (pectoral kept: --keep-pectoral), "
                        "or index into a new folder")


def _write(cache_dir: Path, settings: dict) -> None:
    atomic.write_text(cache_dir / SETTINGS_NAME,
                      json.dumps({"format": FORMAT, "settings": settings}, indent=1, sort_keys=True) + "\n", suffix=".tmp")
