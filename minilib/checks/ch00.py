"""Checkers for chapter 00 (setup): the warm-up exercise."""

import torch

from .core import check_function

__all__ = ["check_softmax"]


def check_softmax(fn) -> bool:
    """`fn(x)` must equal torch.softmax(x, dim=-1), also for large logits (no overflow)."""
    g = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(5, generator=g),),
        (torch.randn(3, 7, generator=g),),
        (torch.tensor([1000.0, 1001.0, 1002.0]),),  # naive exp overflows to inf here
        (torch.full((2, 4), -50.0),),
    ]
    return check_function("softmax", fn, lambda x: torch.softmax(x, dim=-1), cases, atol=1e-6)
