"""Checkers for chapter 04's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from ..attention import causal_attention
from .core import check_call, check_function, compare

__all__ = ["check_causal_attention", "check_cache_update"]


def check_causal_attention(fn) -> bool:
    """fn(q, k, v): q (B, H, Tq, D), k/v (B, H, Tk, D), Tk >= Tq, bottom-right causal mask."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for B, H, Tq, Tk, D in ((1, 1, 4, 4, 8), (2, 3, 6, 6, 16), (1, 2, 3, 7, 8), (2, 2, 1, 5, 4)):
        cases.append((torch.randn(B, H, Tq, D, generator=g), torch.randn(B, H, Tk, D, generator=g),
                      torch.randn(B, H, Tk, D, generator=g)))
    return check_function("causal_attention", fn, lambda q, k, v: causal_attention(q, k, v),
                          cases, atol=1e-5, rtol=1e-5)


def check_cache_update(fn) -> bool:
    """fn(k_buf, v_buf, k_new, v_new, pos) writes k_new/v_new (B, H, Tn, D) into the buffers
    (B, H, Tmax, D) at positions pos .. pos+Tn-1 and returns the views up to pos+Tn."""

    def run():
        g = torch.Generator().manual_seed(0)
        B, H, Tmax, D = 2, 3, 10, 4
        k_buf, v_buf = torch.zeros(B, H, Tmax, D), torch.zeros(B, H, Tmax, D)
        want_k, want_v = torch.zeros(B, H, Tmax, D), torch.zeros(B, H, Tmax, D)
        pos = 0
        for t_new in (4, 1, 3):
            k_new, v_new = torch.randn(B, H, t_new, D, generator=g), torch.randn(B, H, t_new, D, generator=g)
            want_k[:, :, pos:pos + t_new], want_v[:, :, pos:pos + t_new] = k_new, v_new
            got = fn(k_buf, v_buf, k_new, v_new, pos)
            if not isinstance(got, tuple) or len(got) != 2:
                return f"expected a tuple (k_all, v_all), got {type(got).__name__}"
            pos += t_new
            problem = compare(list(got), [want_k[:, :, :pos], want_v[:, :, :pos]], 0.0, 0.0)
            if problem:
                return f"after writing {t_new} tokens (now {pos} cached): {problem}"
            if got[0].data_ptr() != k_buf.data_ptr() or got[1].data_ptr() != v_buf.data_ptr():
                return "return views of the buffers (slices), not copies: no memory should be allocated"
        if compare([k_buf, v_buf], [want_k, want_v], 0.0, 0.0):
            return "the buffers themselves were not written in place"
        return None

    return check_call("cache_update", run)
