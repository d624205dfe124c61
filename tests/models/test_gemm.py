"""The GEMM path is a per-machine measurement, cached, and can be forced."""

import json

import pytest
import torch

from mammodino.models import gemm


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MAMMODINO_GEMM", raising=False)
    monkeypatch.delenv("MAMMODINO_ONEDNN_LINEAR", raising=False)
    monkeypatch.setattr(gemm, "onednn_available", lambda: True)
    gemm.set_path(None)
    yield
    gemm.set_path(None)


@pytest.mark.parametrize("winner", ["onednn", "aten"])
def test_the_faster_path_is_chosen_and_cached(monkeypatch, tmp_path, winner):
    other = "aten" if winner == "onednn" else "onednn"
    monkeypatch.setattr(gemm, "measure", lambda: {winner: 0.1, other: 0.2})
    assert gemm.choose() == winner
    table = json.loads((tmp_path / "mammodino" / "gemm.json").read_text())
    entry = table[gemm.machine_key()]
    assert entry["path"] == winner and entry["seconds"][other] == 0.2
    assert torch.backends.cpu.get_cpu_capability() in gemm.machine_key()

    def boom():
        raise AssertionError("measured again despite the cache")

    gemm.set_path(None)  # a new process: reads the cache, does not measure
    monkeypatch.setattr(gemm, "measure", boom)
    assert gemm.choose() == winner


def test_another_isa_limit_is_another_machine(monkeypatch):
    key = gemm.machine_key()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert gemm.machine_key() != key and "ONEDNN_MAX_CPU_ISA=AVX2" in gemm.machine_key()


@pytest.mark.parametrize("env, value, expected", [("MAMMODINO_GEMM", "aten", "aten"),
                                                  ("MAMMODINO_GEMM", "onednn", "onednn"),
                                                  ("MAMMODINO_ONEDNN_LINEAR", "0", "aten")])
def test_environment_forces_a_path_without_measuring(monkeypatch, env, value, expected):
    monkeypatch.setenv(env, value)
    monkeypatch.setattr(gemm, "measure", lambda: pytest.fail("measured although forced"))
    assert gemm.choose() == expected


def test_real_measurement_returns_both_paths():
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        pytest.skip("no oneDNN linear in this build")
    seconds = gemm.measure(repeats=1)
    assert set(seconds) == set(gemm.PATHS) and all(v > 0 for v in seconds.values())


@pytest.mark.parametrize("fp32, bf16, expected", [(0.2, 0.05, True), (0.2, 0.105, True), (0.2, 0.17, False)])
def test_cpu_bf16_is_chosen_by_measured_speedup_and_cached(monkeypatch, tmp_path, fp32, bf16, expected):
    monkeypatch.setattr(gemm, "measure_bf16", lambda: {"fp32": fp32, "bf16": bf16})
    assert gemm.cpu_bf16_pays() is expected
    table = json.loads((tmp_path / "mammodino" / "gemm.json").read_text())
    assert table[gemm.machine_key() + "|bf16 autocast"]["bf16"] is expected
    gemm.set_path(None)  # a new process: the cached verdict, no measurement
    monkeypatch.setattr(gemm, "measure_bf16", lambda: pytest.fail("measured again despite the cache"))
    assert gemm.cpu_bf16_pays() is expected


def test_real_bf16_measurement_times_both_precisions():
    seconds = gemm.measure_bf16(repeats=1)
    assert set(seconds) == {"fp32", "bf16"} and all(v > 0 for v in seconds.values())


def test_a_stored_bf16_measurement_is_judged_by_the_current_threshold(monkeypatch, tmp_path):
    """A verdict cached under the old 2x rule (Zen 5 class: GEMMs 1.9x) is re-judged from its
    seconds, not taken as it was, and nothing is measured again."""
    cache = tmp_path / "mammodino" / "gemm.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({gemm.machine_key() + "|bf16 autocast":
                                 {"bf16": False, "seconds": {"fp32": 0.1057, "bf16": 0.056}}}))
    monkeypatch.setattr(gemm, "measure_bf16", lambda: pytest.fail("measured although the seconds are stored"))
    assert gemm.cpu_bf16_pays() is True
