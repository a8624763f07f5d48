"""Checkers for chapter 02's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from .core import check_function

__all__ = ["check_rms_norm"]


def _reference_rms_norm(x, weight, eps=1e-6):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight.float()).to(x.dtype)


def check_rms_norm(fn) -> bool:
    """fn(x, weight, eps=1e-6): (..., C) -> (..., C), normalised over the last dimension."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(4, 8, generator=g), torch.ones(8)),
        (torch.randn(2, 5, 16, generator=g) * 10, torch.randn(16, generator=g)),
        ((torch.randn(3, 32, generator=g) * 1e-3, torch.rand(32, generator=g)), {"eps": 1e-5}),
        (torch.zeros(2, 4), torch.ones(4)),  # eps keeps an all-zero row finite
    ]
    return check_function("rms_norm", fn, _reference_rms_norm, cases, atol=1e-5, rtol=1e-4)
