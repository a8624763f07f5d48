"""LoRA: low-rank adapters on frozen linear layers.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (ICLR 2022), arXiv:2106.09685.
A frozen weight W (out, in) gets a trainable low-rank change:

    y = x W^T + b + (alpha / r) · dropout(x) A^T B^T,      A: (r, in),  B: (out, r)

Choices:
- `B` starts at zero and `A` at a Kaiming-uniform draw (as in the paper's Section 4.1 and in
  PEFT's `LoraLayer.reset_lora_parameters`), so a freshly adapted model computes exactly the
  base model's function while the gradient of B (which depends on A) is non-zero at step one.
- The scale is alpha / r (the paper), not alpha / sqrt(r) (rsLoRA, arXiv:2312.03732): changing
  r then barely changes the effective learning rate at the start.
- Dropout acts on the adapter's input only, never on the frozen path (the paper, and PEFT).
- `merge_lora` folds W' = W + (alpha / r) · B A into a plain `nn.Linear`, so an exported model
  has no trace of the adapters and runs at exactly the base model's cost.

Shapes: `in`/`out` are the linear's features, `r` the rank, `...` any leading dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank change; (..., in) -> (..., out)."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"base must be an nn.Linear, got {type(base).__name__}")
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive int, got {rank!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)  # the pretrained weight never changes: only A and B learn
        self.rank, self.alpha = rank, float(alpha)
        self.scaling = self.alpha / rank
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))
        # the same init nn.Linear gives its own weight (and PEFT gives A); B = 0 keeps ΔW = 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The adapter's change to the weight, (out, in) = scaling · B @ A."""
        return (self.lora_B @ self.lora_A) * self.scaling  # (out, r) @ (r, in) -> (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # two thin matmuls (in -> r -> out) instead of forming the (out, in) delta: cheaper for small r
        low = self.dropout(x) @ self.lora_A.T  # (..., in) @ (in, r) -> (..., r)
        return self.base(x) + (low @ self.lora_B.T) * self.scaling  # (..., out)

    def merged(self) -> nn.Linear:
        """A plain `nn.Linear` with the adapter folded in (W + scaling · B A), trainable again."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                lin.bias.copy_(self.base.bias)
        return lin

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def _matches(full_name: str, targets: tuple[str, ...]) -> bool:
    """A module matches a target by its attribute name ("wq") or a dotted suffix ("attn.wq")."""
    return any(full_name == t or full_name.endswith("." + t) for t in targets)


def apply_lora(model: nn.Module, targets: Iterable[str] = ("wq", "wv"), rank: int = 8,
               alpha: float = 16.0, dropout: float = 0.0) -> nn.Module:
    """Freeze `model` and wrap every `nn.Linear` named in `targets` in a `LoRALinear`, in place.

    The default targets (query and value projections) are the paper's choice (Section 7.1).
    Raises ValueError when no linear layer matches, listing the names that would.
    """
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    if not targets:
        raise ValueError("targets must name at least one linear layer, got an empty sequence")
    for p in model.parameters():
        p.requires_grad_(False)  # everything not wrapped below stays frozen
    found = [(name, mod) for name, mod in model.named_modules()
             if isinstance(mod, nn.Linear) and _matches(name, targets)]
    if not found:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"apply_lora: no nn.Linear matches targets {list(targets)}; "
                         f"linear layers in this model are named {names}")
    for name, lin in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(lin, rank=rank, alpha=alpha, dropout=dropout))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put plain `nn.Linear`s back, in place.

    The merged model computes the same function (up to float rounding) with no adapter cost.
    All parameters are trainable again afterwards, as before `apply_lora`.
    """
    lora_modules = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, mod in lora_modules:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, mod.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapter parameters (every A and B), e.g. to hand to the optimizer."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with requires_grad (a tied weight counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)  # parameters() dedups
