"""Checkers for chapter 03's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from ..rope import apply_rope, precompute_rope
from .core import check_function

__all__ = ["check_apply_rope"]


def check_apply_rope(fn) -> bool:
    """fn(x, cos, sin): x (B, H, T, D), cos/sin (T, D) -> (B, H, T, D), rotate-half convention."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for B, H, T, D in ((1, 1, 4, 2), (2, 3, 7, 8), (1, 2, 16, 32)):
        cos, sin = precompute_rope(D, T)
        cases.append((torch.randn(B, H, T, D, generator=g), cos, sin))
    cos, sin = precompute_rope(8, 40)
    cases.append((torch.randn(1, 1, 10, 8, generator=g), cos[30:40], sin[30:40]))  # late positions
    return check_function("apply_rope", fn, apply_rope, cases, atol=1e-5, rtol=1e-5)
