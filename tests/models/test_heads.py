"""DINO head (weight-normed prototypes, magnitude fixed at 1) and the slice projector."""

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mammodino.models.heads import DINOHead, SliceProjector


def test_dino_head_architecture():
    head = DINOHead(384, 4096)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(384, 2048), (2048, 2048), (2048, 256)]
    assert sum(isinstance(m, nn.GELU) for m in head.mlp) == 2
    assert head.last_layer.weight.shape == (4096, 256)
    assert head(torch.randn(5, 384)).shape == (5, 4096)


def test_last_layer_equals_torch_weight_norm_with_g_fixed_at_one():
    torch.manual_seed(0)
    head = DINOHead(16, 10, hidden_dim=32, bottleneck_dim=8)
    ref = nn.utils.parametrizations.weight_norm(nn.Linear(8, 10, bias=False))
    with torch.no_grad():
        ref.parametrizations.weight.original0.fill_(1.0)  # g
        ref.parametrizations.weight.original1.copy_(head.last_layer.weight)  # v
    z = F.normalize(torch.randn(4, 8), dim=-1)
    assert torch.allclose(head.last_layer(z), ref(z), atol=1e-6)


def test_prototype_magnitude_does_not_matter_and_logits_are_cosines():
    torch.manual_seed(0)
    head = DINOHead(16, 10, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(6, 16)
    before = head(x)
    with torch.no_grad():
        head.last_layer.weight.mul_(torch.rand(10, 1) * 5 + 0.1)
    assert torch.allclose(head(x), before, atol=1e-6)
    assert before.abs().max() <= 1.0 + 1e-6


def test_dino_head_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    head = DINOHead(16, 10, hidden_dim=32, bottleneck_dim=8)
    save_file(head.state_dict(), str(tmp_path / "h.safetensors"))
    other = DINOHead(16, 10, hidden_dim=32, bottleneck_dim=8)
    other.load_state_dict(load_file(str(tmp_path / "h.safetensors")))
    x = torch.randn(3, 16)
    assert torch.equal(head(x), other(x))
    assert set(head.state_dict()) == {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
                                      "mlp.4.weight", "mlp.4.bias", "last_layer.weight"}


def test_slice_projector_outputs_unit_vectors_and_teacher_names_are_a_subset():
    torch.manual_seed(0)
    student = SliceProjector(32, 64, 16, predictor=True)
    teacher = SliceProjector(32, 64, 16, predictor=False)
    x = torch.randn(5, 32)
    for z in (student(x), teacher(x), student(x, predict=False)):
        assert z.shape == (5, 16)
        assert torch.allclose(z.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert set(dict(teacher.named_parameters())) < set(dict(student.named_parameters()))
    teacher.load_state_dict({k: v for k, v in student.state_dict().items() if not k.startswith("predictor.")})
    assert torch.allclose(teacher(x), student(x, predict=False))
    assert not torch.allclose(student(x), student(x, predict=False))
