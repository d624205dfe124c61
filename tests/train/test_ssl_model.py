"""SSLModel.forward_losses against the objective written out by hand on one small batch.

Every term is recomputed here from the raw student and teacher outputs with plain tensor
arithmetic (no loss module): DINO over every (student crop, other teacher crop) pair divided
by their number, iBOT in its dense (B, N, K) form, the symmetric slice InfoNCE on DBT rows
only, KoLeo on each global crop. A pairing mistake (teacher crop 1 against student crop 1,
a wrong normaliser, FFDM rows in the InfoNCE) changes the value and fails the test.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mammodino.config import load_config
from support.micro import MICRO
from mammodino.train.ssl_model import SSLModel

B, L, G, P = 3, 2, 32, 16  # samples, local crops, global size, patch
N = (G // P) ** 2


def _cfg(centering: str):
    return load_config("cpu-tiny", MICRO + ["model.drop_path_rate=0.0", f"dino.centering={centering}"])


def _batch() -> dict:
    gen = torch.Generator().manual_seed(1)
    masks = torch.zeros(2 * B, N, dtype=torch.bool)
    masks[0, [0, 3]] = True
    masks[1, 1] = True
    masks[4, [0, 1, 2]] = True
    n_masked = int(masks.sum())
    per_image = 1.0 / masks.sum(-1).clamp(min=1).float()
    return {
        "global_crops": torch.randn(2 * B, 1, G, G, generator=gen),
        "local_crops": torch.randn(L * B, 1, G // 2, G // 2, generator=gen),
        "masks": masks,
        "mask_indices_list": masks.flatten().nonzero().flatten(),
        "n_masked_patches": torch.tensor([n_masked]),
        "masks_weight": per_image.unsqueeze(-1).expand_as(masks)[masks],
        "is_dbt": torch.tensor([True, False, True]),
    }


def _ce(teacher_probs, student_logits, temp=0.1):
    return -(teacher_probs * F.log_softmax(student_logits / temp, -1)).sum(-1)


def _koleo(x):
    x = F.normalize(x, dim=-1, eps=1e-8)
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return -torch.log(d.min(1).values + 1e-8).mean()


def _info_nce(q, k, temp=0.1):
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    return -torch.log_softmax(q @ k.t() / temp, -1).diagonal().mean()


def _by_hand(model, batch, teacher_temp):
    """The objective from the networks' raw outputs; centre taken before this step's update."""
    with torch.no_grad():
        t = model.teacher(batch["global_crops"], batch["mask_indices_list"])
        s = model.student(batch["global_crops"], batch["local_crops"], batch["masks"], batch["mask_indices_list"])
    if model.cfg.dino.centering == "centering":
        t_probs = torch.softmax((t["dino_logits"] - model.dino_loss.center) / teacher_temp, -1)
        p_probs = torch.softmax((t["ibot_logits"] - model.ibot_loss.center.reshape(1, -1)) / teacher_temp, -1)
    else:
        t_probs = model.dino_loss.sinkhorn_knopp_teacher(t["dino_logits"], teacher_temp)
        p_probs = model.ibot_loss.sinkhorn_knopp_teacher(t["ibot_logits"], teacher_temp)
    t1, t2 = t_probs.chunk(2)
    s1, s2 = s["global_logits"].chunk(2)
    pairs = [(s1, t2), (s2, t1)] + [(loc, tt) for loc in s["local_logits"].chunk(L) for tt in (t1, t2)]
    dino = sum(_ce(tt, ss).mean() for ss, tt in pairs) / len(pairs)
    # iBOT, dense: (2B, N, K) arrays, per-image mean over its masked patches, mean over 2B images
    masks = batch["masks"]
    k = p_probs.shape[-1]
    dense_s = torch.zeros(2 * B, N, k).masked_scatter(masks.unsqueeze(-1), s["ibot_logits"])
    dense_t = torch.zeros(2 * B, N, k).masked_scatter(masks.unsqueeze(-1), p_probs)
    per_patch = _ce(dense_t, dense_s) * masks
    ibot = (per_patch.sum(-1) / masks.sum(-1).clamp(min=1)).mean()
    koleo = sum(_koleo(c) for c in s["global_cls"].chunk(2))
    d = batch["is_dbt"]
    z1, z2 = s["slice_z"].chunk(2)
    k1, k2 = t["slice_z"].chunk(2)
    slice_ = 0.5 * (_info_nce(z1[d], k2[d]) + _info_nce(z2[d], k1[d]))
    total = dino + ibot + 0.1 * koleo + 0.5 * slice_
    return {"dino_loss": dino, "ibot_loss": ibot, "koleo_loss": koleo, "slice_loss": slice_, "loss": total}


@pytest.mark.parametrize("centering", ["centering", "sinkhorn_knopp"])
def test_forward_losses_equal_the_objective_by_hand(centering):
    torch.manual_seed(0)
    model = SSLModel(_cfg(centering))
    with torch.no_grad():  # teacher != student, as after some EMA steps, so a swap would show
        for p in model.teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.dino_loss.center.normal_(0, 0.1)
        model.ibot_loss.center.normal_(0, 0.1)
    batch = _batch()
    want = _by_hand(model, batch, 0.05)
    center_before = model.dino_loss.center.clone()
    got = model.forward_losses(batch, 0.05)
    for key, value in want.items():
        assert torch.allclose(got[key], value, rtol=1e-4, atol=1e-5), (key, float(got[key]), float(value))
    assert torch.allclose(got["dino_loss"], got["dino_global_loss"] + got["dino_local_loss"])
    assert got["loss"].requires_grad
    if centering == "centering":  # the centre moved towards this batch's mean teacher logit
        assert not torch.equal(model.dino_loss.center, center_before)


def test_pairing_matters_same_crop_targets_give_another_value():
    """The check above can fail: pairing each student crop with its own teacher crop differs."""
    torch.manual_seed(0)
    model = SSLModel(_cfg("centering"))
    batch = _batch()
    with torch.no_grad():
        t = model.teacher(batch["global_crops"], batch["mask_indices_list"])
        s = model.student(batch["global_crops"], batch["local_crops"], batch["masks"], batch["mask_indices_list"])
    probs = torch.softmax(t["dino_logits"] / 0.05, -1)
    right = model.dino_loss.forward_multicrop(s["global_logits"], None, probs)
    wrong = _ce(probs, s["global_logits"]).mean()
    assert not math.isclose(float(right), float(wrong), rel_tol=1e-4)


def test_student_gradient_reaches_every_head_and_teacher_gets_none():
    torch.manual_seed(0)
    model = SSLModel(_cfg("centering"))
    model.forward_losses(_batch(), 0.05)["loss"].backward()
    for name in ("backbone.patch_embed", "dino_head.mlp", "dino_head.last_layer", "slice_proj.predictor"):
        grads = [p.grad for n, p in model.student.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), name
    assert all(p.grad is None for p in model.teacher.parameters())
