"""`mammodino finetune` and `mammodino predict` from the command line: the full path, and
one-line errors (exit 2) for bad input."""

import csv
import json

import pytest

from mammodino.cli import main
from finetune._helpers import MICRO_FT, write_lesion_cache


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_lesion_cache(tmp_path_factory.mktemp("cli_ft"), n_patients=12)


def test_finetune_then_predict(data, tmp_path, capsys):
    cache, labels = data
    out = tmp_path / "ft"
    argv = ["finetune", str(cache), *MICRO_FT, "train.steps=3", "--random-init", "--arch", "tiny", "--patch-size", "16",
            "--task", "phantom-lesion", "--labels", str(labels), "--out", str(out), "--config", "cpu-tiny",
            "--head", "linear", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| phantom-lesion | finetune | image |" in text and "model.safetensors" in text
    assert json.loads((out / "config.json").read_text())["head"]["kind"] == "linear"
    assert main(argv) == 2  # the folder holds a fine-tune: refused without --resume
    assert "pass --resume" in capsys.readouterr().err
    scores = tmp_path / "scores.csv"
    assert main(["predict", str(out), str(cache), "--out", str(scores), "--no-progress", "--threads", "1"]) == 0
    assert "scored 48 images (0 skipped)" in capsys.readouterr().out
    with open(scores, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["level"] for r in rows} == {"image", "breast", "exam"}


@pytest.mark.parametrize("args, message", [
    (["finetune", "X", "--task", "nope", "--labels", "l.csv", "--out", "o", "--random-init"], "unknown task"),
    (["finetune", "a", "b", "c", "--task", "phantom-lesion", "--out", "o"], "expects ENCODER CACHE"),
    (["finetune", "X", "model.hed=1", "--task", "phantom-lesion", "--out", "o", "--random-init"], "model.hed"),
    (["finetune", "X", "--task", "phantom-lesion", "--out", "o", "--random-init", "--label-fraction", "2"],
     "label-fraction"),
    (["predict", "no-such-model", ".", "--out", "x.csv"], "config.json"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_help_lists_both_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "finetune" in out and "predict" in out
