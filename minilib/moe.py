"""Mixture-of-Experts feed-forward layer: router, SwiGLU experts, auxiliary losses, dispatch.

A dense transformer block runs every token through one feed-forward network (FFN). An MoE
layer holds E expert FFNs and a small router that sends each token to only k of them, so the
parameter count grows with E while the compute per token grows only with k.

- Sparsely-gated MoE: Shazeer et al. 2017, arXiv:1701.06538 (softmax router, top-k).
- Switch Transformer: Fedus et al. 2021, arXiv:2101.03961 — the load-balancing loss
  E · Σ_i f_i · P_i (eq. 4–6), f_i = share of routed token slots that went to expert i,
  P_i = mean router probability of expert i.
- Mixtral: Jiang et al. 2024, arXiv:2401.04088 — top-2 of 8 SwiGLU experts, softmax over all
  experts, then the k chosen weights renormalised to sum to 1 (`norm_topk_prob=True`).
- Router z-loss: Zoph et al. 2022 (ST-MoE), arXiv:2202.08906, eq. 5 — mean of
  logsumexp(router logits)², which keeps the logits small and the router numerically stable.
- Shared expert: DeepSeekMoE, Dai et al. 2024, arXiv:2401.06066 — an always-on FFN that every
  token goes through besides its routed experts. `n_shared_experts` shared experts are fused
  into one SwiGLU of `n_shared_experts × hidden` units (the same function, one matmul).
- SwiGLU: Shazeer 2020, arXiv:2002.05202 — w_down(silu(w_gate x) ⊙ w_up x).

Dispatch (`dispatch_sorted`): the k·N (token, expert) assignments are sorted by expert, so each
expert's tokens form one contiguous slice; every expert then runs ONCE on its slice (E matmuls
of the right sizes, a Python loop over experts, never over tokens), and `index_add_` scatters
the weighted outputs back. `dispatch_loop` is the boolean-mask loop most tutorials write; it is
kept as the readable reference that tests and benchmarks compare against.

Reference: `transformers` `MixtralSparseMoeBlock` / `load_balancing_loss_func`
(transformers/models/mixtral/modeling_mixtral.py). Same maths; differences: our experts are a
`ModuleList` of `SwiGLU` (readable names `experts.{e}.w_gate`) where Mixtral stacks them into
3-D tensors (`hf_mapping.py` converts), and the router softmax is in float32 in both.
The load-balancing loss follows `transformers` exactly: f_i counts all k slots, so f sums to k
and a perfectly balanced router scores k (not 1).

Shapes: B batch, T positions, C d_model, N = B·T tokens, E experts, k experts per token,
F hidden units of one expert.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """The dense gated FFN of Llama/Mixtral: (..., C) -> (..., C)."""

    def __init__(self, d_model: int, hidden_dim: int):
        super().__init__()
        if d_model < 1 or hidden_dim < 1:
            raise ValueError(f"d_model and hidden_dim must be >= 1, got {d_model} and {hidden_dim}")
        self.w_gate = nn.Linear(d_model, hidden_dim, bias=False)
        self.w_up = nn.Linear(d_model, hidden_dim, bias=False)
        self.w_down = nn.Linear(hidden_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))  # (..., F) -> (..., C)


class Router(nn.Module):
    """Linear router: x (N, C) -> logits (N, E), probs (N, E), top-k weights (N, k), indices (N, k).

    probs = softmax(logits) over ALL experts (float32); the k largest are kept and, when
    `norm_topk_prob`, renormalised to sum to 1 per token (Mixtral). Weights come back in x's dtype.
    """

    def __init__(self, d_model: int, n_experts: int, top_k: int, norm_topk_prob: bool = True):
        super().__init__()
        _check_moe_sizes(n_experts, top_k)
        self.n_experts, self.top_k, self.norm_topk_prob = n_experts, top_k, norm_topk_prob
        self.gate = nn.Linear(d_model, n_experts, bias=False)

    def forward(self, x: torch.Tensor):
        logits = self.gate(x)  # (N, E)
        probs = torch.softmax(logits.float(), dim=-1)  # (N, E): fp32, tiny differences flip top-k
        weights, indices = torch.topk(probs, self.top_k, dim=-1)  # (N, k) each, descending
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)  # (N, k), rows sum to 1
        return logits, probs, weights.to(x.dtype), indices


def load_balancing_loss(router_probs: torch.Tensor, expert_indices: torch.Tensor,
                        n_experts: int) -> torch.Tensor:
    """Switch/Mixtral auxiliary loss E · Σ_i f_i · P_i: probs (N, E), indices (N, k) -> scalar.

    f_i (no gradient: it comes from the discrete top-k) = slots routed to expert i / N;
    P_i (carries the gradient to the router) = mean of probs[:, i]. Minimum k, at uniform routing.
    """
    n_tokens = router_probs.shape[0]
    counts = torch.zeros(n_experts, device=router_probs.device, dtype=torch.float32)
    counts = counts.scatter_add_(0, expert_indices.reshape(-1),  # (E,): slots per expert
                                 torch.ones(expert_indices.numel(), device=counts.device))
    f = counts / n_tokens  # (E,), sums to k
    p = router_probs.float().mean(dim=0)  # (E,), sums to 1
    return n_experts * (f * p).sum()


def router_z_loss(router_logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE z-loss: mean over tokens of logsumexp(logits)²: (N, E) -> scalar."""
    return torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()


def dispatch_sorted(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                    experts: nn.ModuleList) -> torch.Tensor:
    """Σ_j weights[n, j] · experts[indices[n, j]](x[n]) with one call per expert: (N, C) -> (N, C)."""
    n_tokens, k = indices.shape
    flat = indices.reshape(-1)  # (N·k,) expert of every (token, slot)
    order = torch.argsort(flat, stable=True)  # (N·k,) slots grouped by expert
    token_of = order // k  # (N·k,) which token each sorted slot belongs to
    counts = torch.bincount(flat, minlength=len(experts)).tolist()  # one host sync for E sizes
    x_sorted = x.index_select(0, token_of)  # (N·k, C): expert e's tokens are one contiguous slice
    outs = [expert(chunk) for expert, chunk in zip(experts, x_sorted.split(counts)) if chunk.numel()]
    y_sorted = torch.cat(outs) if outs else x_sorted  # (N·k, C)
    y_sorted = y_sorted * weights.reshape(-1)[order, None]  # (N·k, C), gate weight of each slot
    return torch.zeros_like(x).index_add_(0, token_of, y_sorted)  # (N, C): sum the k slots


def dispatch_loop(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                  experts: nn.ModuleList) -> torch.Tensor:
    """The tutorial's loop: for every expert and slot, mask its tokens. Same result as
    `dispatch_sorted` (the reference it is tested against), E·k masked gathers: (N, C) -> (N, C)."""
    out = torch.zeros_like(x)  # (N, C)
    for e, expert in enumerate(experts):
        for j in range(indices.shape[1]):
            mask = indices[:, j] == e  # (N,) bool
            if mask.any():
                out[mask] += weights[mask, j, None] * expert(x[mask])  # (n_e, C)
    return out


class MoE(nn.Module):
    """Sparse MoE FFN: x (B, T, C) -> (y (B, T, C), load-balancing loss, z-loss).

    Each token goes to its top-k of `n_experts` SwiGLU experts (`expert_hidden` units each),
    plus `n_shared_experts` always-on experts. The two losses are returned unweighted; the
    model multiplies them by its coefficients.
    """

    def __init__(self, d_model: int, n_experts: int, top_k: int, expert_hidden: int,
                 n_shared_experts: int = 0, norm_topk_prob: bool = True):
        super().__init__()
        _check_moe_sizes(n_experts, top_k)
        if n_shared_experts < 0:
            raise ValueError(f"n_shared_experts must be >= 0, got {n_shared_experts}")
        self.n_experts, self.top_k = n_experts, top_k
        self.router = Router(d_model, n_experts, top_k, norm_topk_prob)
        self.experts = nn.ModuleList(SwiGLU(d_model, expert_hidden) for _ in range(n_experts))
        self.shared = SwiGLU(d_model, n_shared_experts * expert_hidden) if n_shared_experts else None

    def forward(self, x: torch.Tensor):
        B, T, C = x.shape
        flat = x.reshape(B * T, C)  # (N, C)
        logits, probs, weights, indices = self.router(flat)  # (N, E), (N, E), (N, k), (N, k)
        y = dispatch_sorted(flat, weights, indices, self.experts)  # (N, C)
        if self.shared is not None:
            y = y + self.shared(flat)  # (N, C)
        lb = load_balancing_loss(probs, indices, self.n_experts)
        z = router_z_loss(logits)
        return y.view(B, T, C), lb, z


def _check_moe_sizes(n_experts: int, top_k: int) -> None:
    if n_experts < 1:
        raise ValueError(f"n_experts must be >= 1, got {n_experts}")
    if not 1 <= top_k <= n_experts:
        raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
