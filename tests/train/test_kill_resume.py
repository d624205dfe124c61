"""SIGKILL a real `mammodino pretrain` process at random moments and in the middle of
checkpoint writes; resumed each time with --resume, it must end bit-identical to an
uninterrupted run (CPU, deterministic, 1 thread in both).

The kills come from outside (support.killer polls the run folder for the
trainer's `.partial` file), so the trainer runs unmodified. The in-process resume and the
2 -> 1 process resume are tested in test_trainer.py and test_torchrun.py.
"""


from support.killer import LAST, PARTIAL, format_report, kill_resume_campaign
from mammodino.train import checkpoint as ckpt

from support.micro import MICRO

EVERY_STEP = MICRO + ["train.checkpoint_every=1"]


def _assert_campaign(report, kills, during_write):
    text = format_report(report)
    assert report["problems"] == [], text
    assert report["kills"] == kills, text
    assert report["kills_during_write"] >= during_write, text
    assert report["same_keys"], text
    # student, teacher, loss centres, AdamW moments, RNG state: all bit-identical
    assert report["max_abs_diff_weights"] == 0.0, text
    assert report["max_abs_diff"] == 0.0, (text, report["differing_keys"])


def test_six_kills_at_random_moments_and_during_writes_then_identical_weights(phantom_cache, tmp_path):
    kills = ["write", "random", "startup", "write", "random", "write"]
    report = kill_resume_campaign(phantom_cache, tmp_path, EVERY_STEP, kills=kills, seed=1, steps=16)
    _assert_campaign(report, kills=6, during_write=3)
    print(format_report(report))
    for seg in report["segments"]:
        if seg["mode"] == "write" or seg["hit_write"]:
            assert seg["hit_write"] and seg["checkpoint_step"] in (None, seg["logged_step"] - 1)
    # the first kill, mid-write of the step it had just logged: that file stayed a
    # .partial, checkpoint-last kept the step before (none yet when it was the first) ...
    seg = report["segments"][0]
    assert seg["mode"] == "write" and seg["hit_write"] and seg["partial_left"]
    # ... and the next run started from exactly that checkpoint, never from the partial file
    assert report["segments"][1]["resumed_from"] == seg["checkpoint_step"]
    assert not (tmp_path / "killed" / PARTIAL).exists()
    tensors, meta = ckpt.load_checkpoint(tmp_path / "killed" / LAST)
    assert meta["state"]["step"] == 16

