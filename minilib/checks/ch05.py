"""Checkers for chapter 05's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from ..moe import load_balancing_loss
from .core import check_function

__all__ = ["check_route", "check_load_balancing_loss"]


def _reference_route(logits: torch.Tensor, top_k: int, norm_topk_prob: bool = True):
    probs = torch.softmax(logits.float(), dim=-1)  # (N, E)
    weights, indices = torch.topk(probs, top_k, dim=-1)  # (N, k)
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, indices


def check_route(fn) -> bool:
    """fn(logits (N, E), top_k, norm_topk_prob=True) -> (weights (N, k), indices (N, k)):
    softmax over all experts, the k largest in descending order, optionally renormalised."""
    g = torch.Generator().manual_seed(0)
    cases = [
        ((torch.randn(6, 4, generator=g), 1), {}),
        ((torch.randn(10, 8, generator=g), 2), {}),
        ((torch.randn(10, 8, generator=g) * 3, 2), {"norm_topk_prob": False}),
        ((torch.randn(5, 16, generator=g), 4), {"norm_topk_prob": True}),
    ]
    return check_function("route", fn, _reference_route, cases, atol=1e-6, rtol=1e-5)


def check_load_balancing_loss(fn) -> bool:
    """fn(router_probs (N, E), expert_indices (N, k), n_experts) -> scalar E · Σ_i f_i · P_i."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for n, e, k in ((12, 4, 1), (40, 8, 2), (30, 6, 3)):
        probs = torch.softmax(torch.randn(n, e, generator=g) * 2, dim=-1)
        indices = torch.topk(probs, k, dim=-1).indices
        cases.append((probs, indices, e))
    collapsed = torch.zeros(16, 4)
    collapsed[:, 2] = 1.0
    cases.append((collapsed, torch.full((16, 1), 2), 4))  # every token on expert 2: loss = E
    return check_function("load_balancing_loss", fn, load_balancing_loss, cases,
                          atol=1e-5, rtol=1e-5)
