import torch

from mammodino.train.monitor import CollapseMonitor


def test_healthy_teacher_is_not_collapsed():
    mon = CollapseMonitor(64, min_prototypes_frac=0.1, min_cls_std=0.01, warn_after=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        probs = torch.softmax(torch.randn(32, 64, generator=g) * 3, dim=-1)
        stats = mon.update(probs, torch.randn(32, 16, generator=g))
    assert stats["prototypes_in_use"] > 40
    assert stats["cls_std"] > 0.1
    assert not stats["collapsed"]


def test_one_prototype_and_identical_features_is_collapse():
    mon = CollapseMonitor(64, min_prototypes_frac=0.1, min_cls_std=0.01, warn_after=5)
    probs = torch.zeros(32, 64)
    probs[:, 3] = 1.0
    feats = torch.ones(32, 16)
    flags = [mon.update(probs, feats)["collapsed"] for _ in range(10)]
    assert flags[:4] == [False] * 4  # no verdict before warn_after
    assert all(flags[5:])
    stats = mon.update(probs, feats)
    assert stats["prototypes_in_use"] < 1.01 and stats["cls_std"] < 1e-6
    assert stats["batch_prototypes_used"] == 1


def test_warning_is_loud_and_names_the_numbers(capsys):
    import sys

    mon = CollapseMonitor(64, warn_after=0, stream=sys.stderr)
    mon.warn(7, {"prototypes_in_use": 1.0, "cls_std": 0.0})
    err = capsys.readouterr().err
    assert "COLLAPSED" in err and "step 7" in err and "1.0 of 64" in err
