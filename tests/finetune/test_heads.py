"""Heads: shapes, the attention pooling's known answers, padding never pooled."""

import pytest
import torch

from mammodino.finetune.heads import AttentionPoolHead, LinearHead, build_head, masked_mean


def _tokens(b=3, n=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"cls": torch.randn(b, d, generator=g), "patches": torch.randn(b, n, d, generator=g)}


@pytest.mark.parametrize("kind", ["linear", "attention"])
@pytest.mark.parametrize("n_out", [1, 2, 4])
def test_head_shapes(kind, n_out):
    head = build_head(kind, 8, n_out, hidden=6)
    assert head(_tokens()).shape == (3, n_out)
    assert head(_tokens(), torch.ones(3, 12, dtype=torch.bool)).shape == (3, n_out)


def test_masked_mean_known_answer():
    p = torch.arange(12, dtype=torch.float32).reshape(1, 4, 3)  # rows 0..3
    m = torch.tensor([[True, False, True, False]])
    assert torch.equal(masked_mean(p, m), (p[0, 0] + p[0, 2])[None] / 2)
    assert torch.equal(masked_mean(p, None), p.mean(dim=1))


def test_attention_with_a_constant_scorer_is_the_masked_mean():
    head = AttentionPoolHead(8, 2, hidden=4)
    torch.nn.init.zeros_(head.w.weight)  # every patch scores the same
    t = _tokens()
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, :5] = True
    a = head.attention(t["patches"], mask)
    assert torch.allclose(a[:, :5], torch.full((3, 5), 0.2)) and torch.all(a[:, 5:] == 0)
    # with the same classifier weights, the linear head on [CLS, mean] gives the same logits
    lin = LinearHead(8, 2)
    lin.norm.load_state_dict(head.norm.state_dict())
    lin.fc.load_state_dict(head.fc.state_dict())
    head.eval(), lin.eval()
    assert torch.allclose(head(t, mask), lin(t, mask), atol=1e-6)


def test_attention_weights_sum_to_one_over_the_image_and_padding_changes_nothing():
    head = AttentionPoolHead(8, 2, hidden=4)
    t = _tokens(b=1)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 7:] = False
    a = head.attention(t["patches"], mask).detach()
    assert torch.allclose(a[0, :7].sum(), torch.tensor(1.0)) and float(a[0, 7:].sum()) == 0.0
    # padding tokens with huge values change nothing
    t2 = {"cls": t["cls"], "patches": t["patches"].clone()}
    t2["patches"][0, 7:] = 1e4
    head.eval()
    assert torch.allclose(head(t, mask), head(t2, mask), atol=1e-5)
    assert head.last_attention.shape == (1, 12)


def test_unknown_head_is_an_error():
    with pytest.raises(ValueError, match="unknown head"):
        build_head("mlp", 8, 2)
