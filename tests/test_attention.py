"""minilib.attention: SDPA vs explicit math, GQA, the bottom-right mask and the KV cache."""

import pytest
import torch
import torch.nn.functional as F

from minilib.attention import Attention, KVCache, causal_attention, causal_mask, repeat_kv
from minilib.rope import precompute_rope

C, H, HKV, T = 32, 4, 2, 12
D = C // H


def _attn(n_kv_head=HKV, use_sdpa=True, seed=0):
    torch.manual_seed(seed)
    return Attention(C, H, n_kv_head, use_sdpa=use_sdpa).eval()


def test_math_matches_sdpa_function():
    """causal_attention equals F.scaled_dot_product_attention(is_causal=True) when Tq == Tk."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, H, T, D) for _ in range(3))
    torch.testing.assert_close(causal_attention(q, k, v),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5, rtol=1e-5)


def test_sdpa_and_math_paths_agree():
    """Attention with use_sdpa=True and False give the same output (atol 1e-5)."""
    a, b = _attn(use_sdpa=True), _attn(use_sdpa=False)
    x = torch.randn(2, T, C)
    cos, sin = precompute_rope(D, T)
    torch.testing.assert_close(a(x, cos, sin), b(x, cos, sin), atol=1e-5, rtol=1e-5)


def test_output_is_causal():
    """Changing a later token never changes an earlier output."""
    a = _attn()
    x = torch.randn(1, T, C)
    x2 = x.clone()
    x2[:, 7:] += torch.randn(1, T - 7, C)
    cos, sin = precompute_rope(D, T)
    torch.testing.assert_close(a(x, cos, sin)[:, :7], a(x2, cos, sin)[:, :7], atol=1e-6, rtol=0)


def test_gqa_equals_mha_with_repeated_kv_weights():
    """GQA equals MHA whose k/v projection repeats each kv head's rows for its query group."""
    gqa = _attn(n_kv_head=HKV)
    mha = Attention(C, H, H).eval()
    n_rep = H // HKV
    with torch.no_grad():
        mha.wq.weight.copy_(gqa.wq.weight)
        mha.wo.weight.copy_(gqa.wo.weight)
        for name in ("wk", "wv"):
            w = getattr(gqa, name).weight.view(HKV, 1, D, C).expand(HKV, n_rep, D, C)
            getattr(mha, name).weight.copy_(w.reshape(H * D, C))
    x = torch.randn(2, T, C)
    cos, sin = precompute_rope(D, T)
    torch.testing.assert_close(gqa(x, cos, sin), mha(x, cos, sin), atol=1e-5, rtol=1e-5)


def test_repeat_kv_grouping():
    """repeat_kv maps output head h to input head h // n_rep."""
    x = torch.randn(2, 3, 5, 4)
    y = repeat_kv(x, 4)
    assert y.shape == (2, 12, 5, 4)
    for h in range(12):
        assert torch.equal(y[:, h], x[:, h // 4])


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_token_by_token_decode_equals_full_forward(use_sdpa):
    """Decoding one token at a time with a KV cache equals the full forward (fp32 atol 1e-5)."""
    a = _attn(use_sdpa=use_sdpa)
    x = torch.randn(2, T, C)
    cos, sin = precompute_rope(D, T)
    full = a(x, cos, sin)
    cache = KVCache(1, 2, HKV, T, D)
    outs = []
    for t in range(T):
        outs.append(a(x[:, t:t + 1], cos[t:t + 1], sin[t:t + 1], cache=cache, layer_idx=0))
        cache.advance(1)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_chunk_against_cache_equals_full_forward(use_sdpa):
    """A prefill of 5 then chunks of 4 and 3 tokens against the cache equal the full forward."""
    a = _attn(use_sdpa=use_sdpa)
    x = torch.randn(2, T, C)
    cos, sin = precompute_rope(D, T)
    full = a(x, cos, sin)
    cache = KVCache(1, 2, HKV, T, D)
    outs = []
    for s, e in ((0, 5), (5, 9), (9, 12)):
        outs.append(a(x[:, s:e], cos[s:e], sin[s:e], cache=cache))
        cache.advance(e - s)
    assert cache.pos == T
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


def test_is_causal_true_is_wrong_for_a_chunk_against_a_cache():
    """With Tq < Tk, SDPA's is_causal=True aligns the mask top-left and hides visible keys;
    the bottom-right mask gives the right answer (the last query sees every key)."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 1, 3, D), torch.randn(1, 1, 8, D), torch.randn(1, 1, 8, D)
    right = causal_attention(q, k, v)
    wrong = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    full = F.scaled_dot_product_attention(q[:, :, -1:], k, v)  # last query: no mask needed
    torch.testing.assert_close(right[:, :, -1:], full, atol=1e-6, rtol=0)
    assert (wrong - right).abs().max() > 1e-2
    mask = causal_mask(3, 8)
    assert mask.tolist()[0] == [True] * 6 + [False] * 2
    assert mask.sum().item() == 6 + 7 + 8


def test_cache_update_returns_views_and_positions():
    """update writes at pos and returns the first pos+Tn positions; advance moves pos; reset clears."""
    cache = KVCache(2, 1, 1, 6, 2)
    k = torch.ones(1, 1, 3, 2)
    k_all, v_all = cache.update(1, k, 2 * k)
    assert k_all.shape == (1, 1, 3, 2) and cache.pos == 0
    cache.advance(3)
    k_all, v_all = cache.update(1, 3 * torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert k_all.shape == (1, 1, 5, 2)
    assert k_all[0, 0, :, 0].tolist() == [1, 1, 1, 3, 3]
    assert v_all[0, 0, :, 0].tolist() == [2, 2, 2, 0, 0]
    assert cache.k[0].abs().sum() == 0  # layer 0 untouched
    cache.reset()
    assert cache.pos == 0
    assert cache.nbytes() == 2 * 2 * 1 * 1 * 6 * 2 * 4


def test_cache_overflow_raises():
    """Writing past max_seq_len raises ValueError."""
    cache = KVCache(1, 1, 1, 4, 2)
    cache.update(0, torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    cache.advance(3)
    with pytest.raises(ValueError, match="overflow"):
        cache.update(0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="overflow"):
        cache.advance(2)


@pytest.mark.parametrize("d_model,n_head,n_kv_head,match", [
    (30, 4, 2, "d_model"), (32, 4, 3, "n_kv_head"), (32, 0, 1, "n_head"),
])
def test_bad_heads_raise(d_model, n_head, n_kv_head, match):
    """d_model % n_head != 0 or n_head % n_kv_head != 0 raise ValueError naming the field."""
    with pytest.raises(ValueError, match=match):
        Attention(d_model, n_head, n_kv_head)


def test_matches_transformers_llama_attention():
    """With the same weights, the output equals transformers' LlamaAttention (fp32 atol 1e-5)."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention

    cfg = LlamaConfig(hidden_size=C, num_attention_heads=H, num_key_value_heads=HKV,
                      max_position_embeddings=T, attention_bias=False)
    cfg._attn_implementation = "eager"
    ref = LlamaAttention(cfg, layer_idx=0).eval()
    a = _attn()
    with torch.no_grad():
        ref.q_proj.weight.copy_(a.wq.weight)
        ref.k_proj.weight.copy_(a.wk.weight)
        ref.v_proj.weight.copy_(a.wv.weight)
        ref.o_proj.weight.copy_(a.wo.weight)
    x = torch.randn(2, T, C)
    cos, sin = precompute_rope(D, T)
    mask = torch.zeros(T, T).masked_fill(~causal_mask(T, T), float("-inf"))[None, None]
    want, _ = ref(x, position_embeddings=(cos[None], sin[None]), attention_mask=mask)
    torch.testing.assert_close(a(x, cos, sin), want, atol=1e-5, rtol=1e-5)
