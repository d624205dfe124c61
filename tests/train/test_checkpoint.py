import torch

from mammodino.errors import UserError
from mammodino.train import checkpoint as ckpt


def _opt():
    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    return p, opt


def test_round_trip_tensors_meta_and_optimizer(tmp_path):
    p, opt = _opt()
    t, m = ckpt.flatten_optimizer(opt.state_dict())
    path = ckpt.save_checkpoint(tmp_path / ckpt.LAST, {"w": p.detach(), **t}, {"state": {"step": 7}, "optimizer": m})
    tensors, meta = ckpt.load_checkpoint(path)
    assert meta["state"]["step"] == 7
    assert torch.equal(tensors["w"], p.detach())
    restored = ckpt.unflatten_optimizer(tensors, meta["optimizer"])
    p2 = torch.nn.Parameter(torch.zeros(3, 2))
    opt2 = torch.optim.AdamW([p2], lr=0.1)
    opt2.load_state_dict(restored)
    assert torch.equal(opt2.state[p2]["exp_avg"], opt.state[p]["exp_avg"])


def test_partial_file_is_never_resumed_from(tmp_path):
    good = ckpt.save_checkpoint(tmp_path / ckpt.LAST, {"w": torch.zeros(2)}, {"state": {"step": 5}})
    # a write killed half-way leaves only the temporary file
    (tmp_path / (ckpt.LAST + ckpt.TMP_SUFFIX)).write_bytes(good.read_bytes()[:40])
    assert ckpt.find_resume_checkpoint(tmp_path) == good
    assert ckpt.clean_partials(tmp_path)
    assert not list(tmp_path.glob("*" + ckpt.TMP_SUFFIX))


def test_damaged_last_falls_back_to_periodic(tmp_path):
    periodic = ckpt.save_checkpoint(tmp_path / ckpt.periodic_name(4), {"w": torch.zeros(2)}, {"state": {"step": 4}})
    (tmp_path / ckpt.LAST).write_bytes(b"\x00" * 10)
    assert ckpt.find_resume_checkpoint(tmp_path) == periodic
    try:
        ckpt.load_checkpoint(tmp_path / ckpt.LAST)
    except UserError as exc:
        assert ckpt.LAST in str(exc)
    else:
        raise AssertionError("a damaged checkpoint must be refused")


def test_unwritable_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no" / "such" / ckpt.LAST
    try:
        ckpt.save_checkpoint(missing, {"w": torch.zeros(1)}, {"state": {"step": 1}})
    except UserError as exc:
        assert "cannot write checkpoint" in str(exc)
    else:
        raise AssertionError("expected a UserError")
    assert not list(tmp_path.rglob("*" + ckpt.TMP_SUFFIX))
