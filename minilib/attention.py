"""Causal multi-head self-attention with grouped-query attention and a preallocated KV cache.

Vaswani et al., "Attention Is All You Need" (2017), arXiv:1706.03762: softmax(QKᵀ/√D) V.
Grouped-query attention (GQA): Ainslie et al. 2023, arXiv:2305.13245 — `n_kv_head` key/value
heads are shared by groups of `n_head / n_kv_head` query heads, which shrinks the KV cache by
that factor (n_kv_head = 1 is multi-query attention, Shazeer 2019, arXiv:1911.02150).

Two interchangeable paths compute the same thing (tests hold them within 1e-5):
- `causal_attention`: the explicit math, for reading and for the chapter;
- `F.scaled_dot_product_attention` (SDPA), which picks a fused kernel (flash / memory-
  efficient) where one exists.

The causal mask is **bottom-right aligned**: with Tq new queries against Tk ≥ Tq keys (the
last Tq of which belong to the queries themselves), query i may see keys 0 .. Tk − Tq + i.
SDPA's `is_causal=True` aligns the mask top-left (query i sees keys 0 .. i), which is only
right when Tq == Tk; for a chunk of several tokens against a cache we pass the mask
explicitly. With a single new query (Tq == 1) every cached key is visible, so no mask.

Differences from the reference (`transformers` LlamaAttention): same weights and maths, no
biases; dropout only on the attention probabilities (as Llama's `attention_dropout`).

Shapes: B batch, T (Tq, Tk) positions, C d_model, H query heads, Hkv key/value heads,
D head_dim = C / H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope


def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor:
    """Bottom-right-aligned causal mask, True where attention is allowed: (Tq, Tk) bool."""
    if t_k < t_q:
        raise ValueError(f"need at least as many keys as queries, got Tq={t_q}, Tk={t_k}")
    i = torch.arange(t_q, device=device)[:, None]  # (Tq, 1)
    j = torch.arange(t_k, device=device)[None, :]  # (1, Tk)
    return j <= i + (t_k - t_q)  # (Tq, Tk)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """Explicit causal attention: q (B, H, Tq, D), k/v (B, H, Tk, D), Tk >= Tq -> (B, H, Tq, D).

    k and v must already have H heads (see `repeat_kv` for GQA).
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    scores = scores.masked_fill(~causal_mask(t_q, t_k, q.device), float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)  # (B, H, Tq, Tk); fp32 softmax
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v  # (B, H, Tq, D)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Share each key/value head with n_rep query heads: (B, Hkv, T, D) -> (B, Hkv*n_rep, T, D).

    Head h of the output is input head h // n_rep, the grouping `transformers` uses.
    """
    if n_rep == 1:
        return x
    B, Hkv, T, D = x.shape
    x = x[:, :, None].expand(B, Hkv, n_rep, T, D)  # (B, Hkv, n_rep, T, D), no copy yet
    return x.reshape(B, Hkv * n_rep, T, D)  # (B, H, T, D)


class KVCache:
    """Preallocated keys and values of every layer, for incremental decoding.

    Buffers are (n_layer, batch_size, n_kv_head, max_seq_len, head_dim); `pos` counts the
    positions already stored. Protocol for one forward pass over Tn new tokens:

        for layer_idx, layer in enumerate(layers):
            k_all, v_all = cache.update(layer_idx, k_new, v_new)  # writes at pos .. pos+Tn-1
            ...attend over k_all, v_all...
        cache.advance(Tn)  # ONCE, after the last layer

    `update` does not move `pos`, because every layer writes to the same positions; the model
    calls `advance` once per forward. Writing past `max_seq_len` raises ValueError.
    """

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, max_seq_len: int,
                 head_dim: int, device=None, dtype: torch.dtype = torch.float32):
        for name, val in (("n_layer", n_layer), ("batch_size", batch_size),
                          ("n_kv_head", n_kv_head), ("max_seq_len", max_seq_len),
                          ("head_dim", head_dim)):
            if val < 1:
                raise ValueError(f"{name} must be >= 1, got {val}")
        shape = (n_layer, batch_size, n_kv_head, max_seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_seq_len = max_seq_len
        self.pos = 0

    def update(self, layer_idx: int, k_new: torch.Tensor, v_new: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k_new/v_new (B, Hkv, Tn, D) at pos; return views (B, Hkv, pos+Tn, D)."""
        B, _, t_new, _ = k_new.shape
        end = self.pos + t_new
        if end > self.max_seq_len:
            raise ValueError(f"KV cache overflow: {self.pos} cached + {t_new} new positions "
                             f"> max_seq_len {self.max_seq_len}")
        if B > self.k.shape[1]:
            raise ValueError(f"batch {B} larger than the cache's batch_size {self.k.shape[1]}")
        self.k[layer_idx, :B, :, self.pos:end] = k_new
        self.v[layer_idx, :B, :, self.pos:end] = v_new
        return self.k[layer_idx, :B, :, :end], self.v[layer_idx, :B, :, :end]

    def advance(self, n: int) -> None:
        """Mark n more positions as cached (call once per forward, after the last layer)."""
        if self.pos + n > self.max_seq_len:
            raise ValueError(f"KV cache overflow: pos {self.pos} + {n} > max_seq_len {self.max_seq_len}")
        self.pos += n

    def reset(self) -> None:
        """Forget every cached position (the buffers are reused, not freed)."""
        self.pos = 0

    def nbytes(self) -> int:
        """Bytes held by the key and value buffers."""
        return self.k.numel() * self.k.element_size() * 2


class Attention(nn.Module):
    """Causal self-attention with RoPE and GQA: x (B, T, C) -> (B, T, C)."""

    def __init__(self, d_model: int, n_head: int, n_kv_head: int, dropout: float = 0.0,
                 use_sdpa: bool = True):
        super().__init__()
        if n_head < 1 or n_kv_head < 1:
            raise ValueError(f"n_head and n_kv_head must be >= 1, got {n_head} and {n_kv_head}")
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        if n_head % n_kv_head:
            raise ValueError(f"n_head ({n_head}) must be divisible by n_kv_head ({n_kv_head})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.head_dim = d_model // n_head
        self.dropout, self.use_sdpa = dropout, use_sdpa
        self.wq = nn.Linear(d_model, n_head * self.head_dim, bias=False)
        self.wk = nn.Linear(d_model, n_kv_head * self.head_dim, bias=False)
        self.wv = nn.Linear(d_model, n_kv_head * self.head_dim, bias=False)
        self.wo = nn.Linear(n_head * self.head_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, layer_idx: int = 0) -> torch.Tensor:
        """x (B, T, C); cos/sin (T, D) already sliced to x's absolute positions -> (B, T, C)."""
        B, T, C = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.wk(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.wv(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # positions enter here only
        if cache is not None:
            k, v = cache.update(layer_idx, k, v)  # (B, Hkv, Tk, D), Tk = cached + T
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, Tk, D)
        p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            t_k = k.shape[-2]
            if T == t_k:  # no cached prefix: the top-left mask is the bottom-right one
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            elif T == 1:  # one new token sees every cached key
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            else:  # a chunk against a cache: is_causal=True would align the mask wrongly
                mask = causal_mask(T, t_k, x.device)  # (T, Tk)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y = causal_attention(q, k, v, dropout_p=p)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, H*D)
        return self.wo(y)  # (B, T, C)
