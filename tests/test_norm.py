"""minilib.norm.RMSNorm agrees with transformers' LlamaRMSNorm and torch.nn.RMSNorm."""

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from minilib.norm import RMSNorm


def _pair(dim, eps=1e-6):
    ours = RMSNorm(dim, eps=eps)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(dim))
    return ours


def test_matches_llama_rmsnorm_fp32():
    """fp32 output equals transformers' LlamaRMSNorm with the same weight (atol 1e-6)."""
    torch.manual_seed(0)
    ours = _pair(64)
    ref = LlamaRMSNorm(64, eps=1e-6)
    ref.weight.data.copy_(ours.weight.data)
    x = torch.randn(3, 7, 64) * 3
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


def test_matches_torch_rmsnorm():
    """fp32 output equals torch.nn.RMSNorm with the same eps and weight."""
    torch.manual_seed(1)
    ours = _pair(48, eps=1e-5)
    ref = torch.nn.RMSNorm(48, eps=1e-5)
    ref.weight.data.copy_(ours.weight.data)
    x = torch.randn(5, 48)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_bf16_input_computed_in_fp32():
    """A bf16 input returns bf16, equal to normalising in fp32 and rounding once (Llama's order)."""
    torch.manual_seed(2)
    ours = _pair(256).to(torch.bfloat16)
    x = (torch.randn(4, 256) * 10).to(torch.bfloat16)
    y = ours(x)
    assert y.dtype == torch.bfloat16
    x32 = x.float()
    want = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16) * ours.weight
    assert torch.equal(y, want)
    ref = LlamaRMSNorm(256).to(torch.bfloat16)
    ref.weight.data.copy_(ours.weight.data)
    assert torch.equal(y, ref(x))


def test_unit_rms_and_scale_invariance():
    """With weight ones the output has RMS 1 per row, and scaling the input does not change it."""
    x = torch.randn(10, 32, dtype=torch.float64)
    norm = RMSNorm(32, eps=1e-12).double()
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(norm(x * 7.5), y)


def test_gradients_match_torch():
    """Backward gives the same input and weight gradients as torch.nn.RMSNorm."""
    torch.manual_seed(3)
    ours, ref = RMSNorm(32), torch.nn.RMSNorm(32, eps=1e-6)
    x1 = torch.randn(6, 32, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn(6, 32)
    (ours(x1) * g).sum().backward()
    (ref(x2) * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dim,eps", [(0, 1e-6), (8, 0.0)])
def test_bad_arguments(dim, eps):
    """A non-positive dim or eps is a ValueError naming the argument."""
    with pytest.raises(ValueError, match="dim|eps"):
        RMSNorm(dim, eps=eps)
