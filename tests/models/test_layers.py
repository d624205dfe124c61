"""The oneDNN linear layer: same values and gradients as F.linear, same state dict."""

import pytest
import torch
import torch.nn.functional as F

from mammodino.models import gemm
from mammodino.models.layers import Linear, linear


@pytest.mark.parametrize("bias, rows, dims", [(True, (3, 7), (24, 40)), (False, (3, 7), (24, 40)),
                                              (True, (2, 261), (96, 384))])
def test_values_and_gradients_equal_f_linear(bias, rows, dims):
    if not gemm.onednn_available():
        pytest.skip("oneDNN linear not available in this torch build")
    gemm.set_path("onednn")
    try:
        _check_against_f_linear(bias, rows, dims)
    finally:
        gemm.set_path(None)


def _check_against_f_linear(bias, rows, dims):
    torch.manual_seed(0)
    lin = Linear(*dims, bias=bias)
    x = torch.randn(*rows, dims[0], requires_grad=True)
    y = lin(x)
    g = torch.randn_like(y)
    y.backward(g)
    grads = (x.grad.clone(), lin.weight.grad.clone(), lin.bias.grad.clone() if bias else None)
    x.grad = None
    lin.zero_grad()
    ref = F.linear(x, lin.weight, lin.bias)
    ref.backward(g)
    assert torch.allclose(y, ref, atol=1e-5)
    assert torch.allclose(grads[0], x.grad, atol=1e-5)
    assert torch.allclose(grads[1], lin.weight.grad, atol=1e-4)
    if bias:
        assert torch.allclose(grads[2], lin.bias.grad, atol=1e-5)
    assert set(lin.state_dict()) == ({"weight", "bias"} if bias else {"weight"})
    assert isinstance(lin, torch.nn.Linear)


def test_fallbacks_give_the_same_result():
    torch.manual_seed(0)
    w, b = torch.randn(5, 4), torch.randn(5)
    assert linear(torch.randn(0, 4), w, b).shape == (0, 5)  # empty input
    x = torch.randn(3, 4)
    assert torch.allclose(linear(x.double(), w.double(), b.double()), F.linear(x.double(), w.double(), b.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(x, w, b).dtype == torch.bfloat16  # autocast keeps its own path


@pytest.mark.parametrize("path", ["onednn", "aten"])
def test_the_chosen_gemm_path_is_the_one_used(path):
    if path == "onednn" and not gemm.onednn_available():
        pytest.skip("oneDNN linear not available in this torch build")
    gemm.set_path(path)
    try:
        y = linear(torch.randn(2, 4, requires_grad=True), torch.randn(3, 4))
    finally:
        gemm.set_path(None)
    assert ("OneDNNLinear" in type(y.grad_fn).__name__) == (path == "onednn")


def test_cpu_bf16_attention_is_softmax_qk_v():
    from mammodino.models.layers import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 3, 41, 64, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 64 ** -0.5)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).abs().max().item()
    assert err < 0.03, err  # bf16 rounding of q, k, v and the probabilities


@pytest.mark.parametrize("tokens", [14, 41, 197, 261])
def test_cpu_fp32_attention_takes_the_measured_kernel_and_equals_sdpa(tokens):
    """fp32 on CPU: the explicit softmax(q k^T) v up to CPU_FP32_EXPLICIT_MAX_TOKENS (faster
    there), SDPA beyond; either way the values and gradients of SDPA."""
    from mammodino.models.layers import CPU_FP32_EXPLICIT_MAX_TOKENS, attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, tokens, 16, generator=g, requires_grad=True) for _ in range(3))
    out = attention(q, k, v, 16 ** -0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    explicit = tokens <= CPU_FP32_EXPLICIT_MAX_TOKENS
    assert ("Attention" in type(out.grad_fn).__name__) != explicit  # ScaledDotProductFlashAttention...Backward
    assert torch.allclose(out, ref, atol=1e-5)
    w = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad((out * w).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads))


def test_patch_embedding_stays_fp32_under_cpu_autocast():
    from mammodino.models.layers import PatchEmbed

    torch.manual_seed(0)
    pe = PatchEmbed(16, 1, 192)
    x = torch.randn(2, 1, 64, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pe(x)
    assert out.dtype == torch.float32 and torch.equal(out, pe(x))
