"""`mammodino pretrain` with bad configs, bad data folders and bad output paths, through the
CLI: each gives exactly one clear message (exit 2, the key or path named, no traceback).

tests/test_config.py checks load_config() itself; this file checks what a user sees from
the command line, including problems found only once the run starts (values that pass
the type checks but break the loader, the model or the schedules; damaged caches). The
cases live in support.config_fuzz (benchmarks/faults.py runs them too).
"""

from __future__ import annotations

import pytest

from mammodino.config import load_config
from mammodino.errors import ConfigError
from support import config_fuzz


@pytest.mark.parametrize("kind, name", config_fuzz.all_cases(), ids=[f"{k}:{n}" for k, n in config_fuzz.all_cases()])
def test_one_clear_message(kind, name, phantom_cache, tmp_path):
    result = config_fuzz.run_case(kind, name, phantom_cache, tmp_path)
    assert not result.escaped, f"{result.escaped}\n{result.output[-2000:]}"
    assert result.rc == 2, result.output[-2000:]
    assert "Traceback" not in result.output
    assert len(result.messages) == 1, result.output[-2000:]
    assert result.must_name in result.messages[0], result.messages[0]
    if result.must_also:
        assert result.must_also in result.output, result.output[-2000:]
    assert result.clear


def test_a_good_command_still_runs(phantom_cache, tmp_path):
    """The harness itself: the same command line with nothing wrong exits 0."""
    from mammodino.cli import main

    argv = config_fuzz.argv_for(phantom_cache, tmp_path / "run")
    assert main(argv) == 0
    assert (tmp_path / "run" / "checkpoint-last.safetensors").exists()


@pytest.mark.parametrize("override", ["optim.betas=[0.9,0.95]", "crops.global_crops_scale=[0.4,1.0]",
                                      "augment.gamma=[0.8,1.2]"])
def test_valid_list_values_are_accepted(override):
    key, value = override.split("=")
    try:
        cfg = load_config("cpu-tiny", [override])
    except ConfigError as exc:
        pytest.fail(f"a valid value was refused: {exc}")
    section, leaf = key.split(".")
    assert list(cfg[section][leaf]) == [float(v) for v in value.strip("[]").split(",")]
