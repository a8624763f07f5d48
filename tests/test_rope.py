"""minilib.rope: the relative-position property, agreement with transformers, the two forms."""

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from minilib.rope import (
    apply_rope,
    apply_rope_complex,
    interleaved_to_half_permutation,
    precompute_freqs_cis,
    precompute_rope,
    rotate_half,
)


def _hf_cos_sin(head_dim, T, theta, rope_parameters=None):
    cfg = LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
                      max_position_embeddings=T,
                      rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": theta})
    rot = LlamaRotaryEmbedding(cfg)
    x = torch.zeros(1, T, head_dim)
    cos, sin = rot(x, torch.arange(T)[None])
    return cos[0], sin[0]


def test_tables_match_transformers():
    """cos/sin equal LlamaRotaryEmbedding's for the default RoPE (fp32, atol 1e-6)."""
    cos, sin = precompute_rope(32, 64, theta=500000.0)
    hcos, hsin = _hf_cos_sin(32, 64, 500000.0)
    assert cos.shape == sin.shape == (64, 32) and cos.dtype == torch.float32
    torch.testing.assert_close(cos, hcos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, hsin, atol=1e-6, rtol=0)


def test_apply_matches_transformers():
    """apply_rope on q and k equals transformers' apply_rotary_pos_emb (atol 1e-6)."""
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8)
    cos, sin = precompute_rope(8, 16)
    hq, hk = apply_rotary_pos_emb(q, k, cos[None], sin[None])  # (B, T, D) tables, unsqueeze_dim=1
    torch.testing.assert_close(apply_rope(q, cos, sin), hq, atol=1e-6, rtol=0)
    torch.testing.assert_close(apply_rope(k, cos, sin), hk, atol=1e-6, rtol=0)


def test_linear_scaling_matches_transformers():
    """'linear' scaling (positions / factor) equals transformers' linear rope_type."""
    cos, sin = precompute_rope(16, 40, scaling="linear", factor=4.0)
    hcos, hsin = _hf_cos_sin(16, 40, 10000.0,
                             {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0})
    torch.testing.assert_close(cos, hcos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, hsin, atol=1e-6, rtol=0)
    # position 4 under factor 4 is position 1 unscaled
    cos0, _ = precompute_rope(16, 40)
    torch.testing.assert_close(cos[4], cos0[1])


def test_ntk_scaling_values():
    """'ntk' uses base theta * factor^(D/(D-2)): the slowest frequency slows by exactly `factor`."""
    D, f = 16, 4.0
    cos, sin = precompute_rope(D, 8, scaling="ntk", factor=f)
    ref_cos, ref_sin = precompute_rope(D, 8, theta=10000.0 * f ** (D / (D - 2)))
    torch.testing.assert_close(cos, ref_cos)
    torch.testing.assert_close(sin, ref_sin)
    ang = torch.atan2(sin[1], cos[1])  # angle per position of each channel pair
    ang0 = torch.atan2(*precompute_rope(D, 8)[::-1])[1]
    torch.testing.assert_close(ang[D // 2 - 1] * f, ang0[D // 2 - 1], rtol=1e-5, atol=0)
    torch.testing.assert_close(ang[0], ang0[0])  # highest frequency unchanged


@pytest.mark.parametrize("kwargs,match", [
    (dict(head_dim=7, max_seq_len=4), "head_dim"),
    (dict(head_dim=8, max_seq_len=4, scaling="yarn"), "scaling"),
    (dict(head_dim=8, max_seq_len=4, scaling="linear", factor=0.5), "factor"),
])
def test_bad_arguments(kwargs, match):
    """Odd head_dim, unknown scaling and factor < 1 raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        precompute_rope(**kwargs)


def test_relative_position_property():
    """<R_m q, R_n k> depends only on m - n (within fp32 table precision), and does vary with it."""
    torch.manual_seed(1)
    D = 32
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    cos, sin = (t.double() for t in precompute_rope(D, 128))

    def score(m, n):
        qm = apply_rope(q.view(1, 1, 1, D), cos[m:m + 1], sin[m:m + 1])
        kn = apply_rope(k.view(1, 1, 1, D), cos[n:n + 1], sin[n:n + 1])
        return (qm * kn).sum().item()

    for delta in (0, 1, 5, 17):
        vals = [score(m, m - delta) for m in range(delta, 120, 13)]
        assert max(vals) - min(vals) < 1e-5, (delta, vals)
    assert abs(score(20, 20) - score(20, 3)) > 1e-2  # the property is not trivially constant


def test_rotation_preserves_norm():
    """RoPE is a rotation: every vector keeps its length."""
    x = torch.randn(1, 2, 50, 16, dtype=torch.float64)
    cos, sin = (t.double() for t in precompute_rope(16, 50))
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_rotate_half_is_quarter_turn():
    """rotate_half twice is minus the identity."""
    x = torch.randn(3, 10)
    torch.testing.assert_close(rotate_half(rotate_half(x)), -x)


def test_complex_form_is_the_permuted_rotate_half_form():
    """The complex form on x equals the rotate-half form on x's channels permuted (and back)."""
    torch.manual_seed(2)
    D, T = 16, 12
    x = torch.randn(2, 3, T, D)
    perm = interleaved_to_half_permutation(D)
    cos, sin = precompute_rope(D, T)
    got = apply_rope_complex(x, precompute_freqs_cis(D, T))
    want = apply_rope(x[..., perm], cos, sin)
    torch.testing.assert_close(got[..., perm], want, atol=1e-6, rtol=0)


def test_permuted_weights_give_same_scores():
    """Complex-form RoPE with W_q, W_k gives the same attention scores as rotate-half RoPE
    with each head's rows of W_q, W_k permuted by interleaved_to_half_permutation."""
    torch.manual_seed(3)
    C, H, D, T = 32, 4, 8, 10
    wq, wk = torch.randn(H * D, C), torch.randn(H * D, C)
    x = torch.randn(2, T, C)
    perm = interleaved_to_half_permutation(D)

    def heads(w):  # (B, T, C) -> (B, H, T, D)
        return (x @ w.T).view(2, T, H, D).transpose(1, 2)

    fc = precompute_freqs_cis(D, T)
    qc, kc = apply_rope_complex(heads(wq), fc), apply_rope_complex(heads(wk), fc)
    scores_complex = qc @ kc.transpose(-2, -1)
    wq_h = wq.view(H, D, C)[:, perm].reshape(H * D, C)
    wk_h = wk.view(H, D, C)[:, perm].reshape(H * D, C)
    cos, sin = precompute_rope(D, T)
    qh, kh = apply_rope(heads(wq_h), cos, sin), apply_rope(heads(wk_h), cos, sin)
    scores_half = qh @ kh.transpose(-2, -1)
    torch.testing.assert_close(scores_half, scores_complex, atol=1e-4, rtol=1e-5)


def test_permutation_matches_hf_conversion_formula():
    """The permutation equals the row shuffle of transformers' convert_llama_weights_to_hf."""
    D = 12
    rows = torch.arange(D).view(D // 2, 2).transpose(0, 1).reshape(D)
    assert torch.equal(interleaved_to_half_permutation(D), rows)


def test_bf16_input_keeps_dtype():
    """A bf16 input is rotated in fp32 and returned as bf16."""
    x = torch.randn(1, 1, 4, 8)
    cos, sin = precompute_rope(8, 4)
    y = apply_rope(x.bfloat16(), cos, sin)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, apply_rope(x.bfloat16().float(), cos, sin).bfloat16())
