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


def _assignments(n_used: int, n_prototypes: int = 1024, n: int = 32) -> torch.Tensor:
    """A batch of sharp teacher assignments spread evenly over ``n_used`` prototypes."""
    probs = torch.zeros(n, n_prototypes)
    probs[torch.arange(n), torch.arange(n) % n_used] = 1.0
    return probs


def test_the_cpu_tiny_floor_sits_between_a_learning_run_and_collapse():
    """cpu-tiny (demo, tests): learning runs on the phantoms dip to 7-9 prototypes in use while
    the probes rise; collapse is 1 in use. The preset's floor flags the second only."""
    from mammodino.config import load_config
    from mammodino.train.step import build_monitor

    cfg = load_config("cpu-tiny", ["train.steps=300"])
    feats = torch.randn(32, 192, generator=torch.Generator().manual_seed(0))
    for n_used, collapsed in ((7, False), (9, False), (1, True)):
        mon = build_monitor(cfg)
        for _ in range(40):
            stats = mon.update(_assignments(n_used), feats)
        assert abs(stats["prototypes_in_use"] - n_used) < 0.1
        assert stats["collapsed"] is collapsed, (n_used, mon.min_prototypes)
