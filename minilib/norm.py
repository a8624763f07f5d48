"""RMSNorm: root-mean-square layer normalisation.

Zhang & Sennrich, "Root Mean Square Layer Normalization" (NeurIPS 2019), arXiv:1910.07467.
LayerNorm (Ba et al. 2016) subtracts the mean and divides by the standard deviation, then
scales and shifts; RMSNorm drops the mean subtraction and the shift:

    y = x / sqrt(mean(x²) + eps) * weight

Choices (the same as Llama, `transformers.models.llama.modeling_llama.LlamaRMSNorm`):
- the statistic is computed in float32 even for bf16/fp16 inputs, because a mean of squares
  over thousands of channels loses too many bits in 8-bit-mantissa bf16;
- the normalised activations are cast back to the input dtype *before* the weight multiply,
  so a bf16 model gives bit-identical results to the `transformers` reference;
- `eps` sits inside the square root (as in the paper and in `torch.nn.RMSNorm`).
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """(..., dim) -> (..., dim), normalised over the last dimension; weight starts at ones."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))  # identity at init: the block starts as a no-op norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.to(torch.promote_types(dtype, torch.float32))  # at least fp32: see the docstring
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)  # (..., dim)
        return normed.to(dtype) * self.weight.to(dtype)  # (..., dim), input dtype

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
