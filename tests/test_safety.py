"""Nothing untrusted is ever unpickled, anywhere in the package."""

import os
import pickle
import re
from pathlib import Path

import pytest

from mammodino.errors import UserError
from mammodino.train.checkpoint import load_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src" / "mammodino"


def _calls(pattern: str):
    hits = []
    for path in SRC.rglob("*.py"):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code):
                hits.append((path.relative_to(SRC), no, line.strip()))
    return hits


def test_no_pickle_anywhere_in_the_package():
    assert _calls(r"\bimport pickle\b|\bpickle\.|cPickle|\bdill\b|joblib\.load") == []


def test_torch_load_always_weights_only():
    bad = [h for h in _calls(r"torch\.load\(") if "weights_only=True" not in h[2]]
    assert bad == []


def test_numpy_load_never_allows_pickle():
    assert _calls(r"allow_pickle\s*=\s*True") == []


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mammodino-pwned",))


def test_crafted_pickle_checkpoint_is_refused(tmp_path):
    marker = Path("/tmp/mammodino-pwned")
    marker.unlink(missing_ok=True)
    bad = tmp_path / "checkpoint-last.safetensors"
    bad.write_bytes(pickle.dumps({"model": _Payload()}))
    with pytest.raises(UserError, match="checkpoint-last.safetensors"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_a_user_error_raised_in_a_dataloader_worker_prints_its_message_only():
    from mammodino.cli import user_message

    wrapped = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 3, in f\n    raise UserError(...)\n'
                        "mammodino.errors.UserError: 8 cached images in a row could not be read\n(detail)\n")
    assert user_message(wrapped) == "8 cached images in a row could not be read\n(detail)"
    assert user_message(UserError("plain")) == "plain"
