"""Checkers for chapter 06's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from ..model import Block, MiniLLM, ModelConfig
from ..rope import precompute_rope
from .core import check_call, compare

__all__ = ["check_block_forward", "check_count_params"]


def check_block_forward(fn) -> bool:
    """fn(x, attn_norm, attn, ffn_norm, ffn, cos, sin) -> x (B, T, C): the pre-norm residual
    block x + attn(attn_norm(x)), then + ffn(ffn_norm(·)), compared with minilib's dense Block."""

    def run():
        torch.manual_seed(0)
        for kw in (dict(d_model=32, n_head=4, n_kv_head=2), dict(d_model=48, n_head=3, n_kv_head=1)):
            cfg = ModelConfig(vocab_size=50, n_layer=2, max_seq_len=16, **kw)
            block = Block(cfg).eval()
            with torch.no_grad():
                for p in block.parameters():  # move the norms off 1 so that skipping one shows
                    p.add_(0.1 * torch.randn_like(p))
                cos, sin = precompute_rope(cfg.head_dim, 16)
                x = torch.randn(2, 9, cfg.d_model)
                want, _ = block(x, cos[:9], sin[:9])
                got = fn(x.clone(), block.attn_norm, block.attn, block.ffn_norm, block.ffn,
                         cos[:9], sin[:9])
            problem = compare(got, want, 1e-5, 1e-5)
            if problem:
                return f"d_model={cfg.d_model}: {problem}"
        return None

    return check_call("block_forward", run)


def check_count_params(fn) -> bool:
    """fn(cfg: ModelConfig) -> int, the parameter count of a dense MiniLLM from its config
    alone (tied head counted once), compared with MiniLLM(cfg).num_params()."""

    def run():
        for kw in (dict(), dict(tie_embeddings=False), dict(n_kv_head=1, ffn_hidden=100),
                   dict(d_model=96, n_head=6, n_kv_head=3, n_layer=3, vocab_size=300)):
            cfg = ModelConfig(**{**dict(vocab_size=500, d_model=64, n_layer=2, n_head=4,
                                        n_kv_head=2, max_seq_len=32), **kw})
            want, got = MiniLLM(cfg).num_params(), fn(cfg)
            if got != want:
                return f"config {kw or 'default'}: expected {want:,} parameters, got {got!r}"
        return None

    return check_call("count_params", run)
