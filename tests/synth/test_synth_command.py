"""`mammodino synth` on the command line."""

import pytest
from synth_helpers import labels_of

from mammodino.cli import main


def test_synth_command_writes_phantoms_and_reports_counts(tmp_path, capsys):
    out = tmp_path / "ph"
    rc = main(["synth", str(out), "--n", "4", "--dbt", "1", "--seed", "2", "--workers", "1", "--quiet",
               "--ffdm-size", "128x100", "--dbt-size", "8x128x100"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("ready: 4 FFDM images (1 patients) and 1 DBT volumes")
    assert " s with 1 worker(s)" in line
    rows = labels_of(out)
    assert len(rows) == 5


def test_synth_command_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("keep me")
    rc = main(["synth", str(tmp_path), "--n", "4", "--quiet"])
    assert rc == 2
    assert "not written by `mammodino synth`" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_synth_command_rejects_a_bad_size(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "p"), "--ffdm-size", "512"])
    assert exc.value.code == 2
