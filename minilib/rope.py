"""Rotary position embeddings (RoPE): precompute the angles once, apply them to q and k.

Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding" (2021),
arXiv:2104.09864. Channel pair i of a query/key at position m is rotated by the angle
m · θ_i with θ_i = theta^(-2i/D). A rotation preserves length, and R_mᵀ R_n = R_{n-m}, so
the score ⟨R_m q, R_n k⟩ depends on the positions only through m − n.

Two layouts of the same rotation exist, and both live here:
- **rotate-half** (`precompute_rope` + `apply_rope`): channel i is paired with channel
  i + D/2. This is what `transformers` (Llama, Mistral, Qwen...) uses, so minilib's models
  use it and export without touching the weights.
- **interleaved pairs / complex** (`precompute_freqs_cis` + `apply_rope_complex`): channels
  (2i, 2i+1) form one complex number multiplied by e^{i m θ_i}. This is Meta's original Llama
  code and the form most tutorials show.
The two differ only in which channels are paired, so permuting the rows of each head of the
q/k projection (`interleaved_to_half_permutation`) turns one into the other exactly; this is
the permutation `transformers`' `convert_llama_weights_to_hf.py` applies to Meta checkpoints.

Context extension (no fine-tuning here; the chapter measures how well each works):
- "linear": position interpolation, Chen et al. 2023, arXiv:2306.15595: positions / factor.
- "ntk": NTK-aware scaling (bloc97, 2023; see also YaRN, Peng et al. arXiv:2309.00071):
  theta · factor^(D / (D − 2)), which stretches the low frequencies by ~factor while leaving
  the highest frequency almost unchanged.

Shapes: B batch, H heads, T positions, D head_dim.
"""

from __future__ import annotations

import torch

SCALINGS = (None, "linear", "ntk")


def _inv_freq(head_dim: int, theta: float, device=None) -> torch.Tensor:
    """θ_i = theta^(-2i/D) for i = 0 .. D/2-1, float32: (D/2,)"""
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)


def _validate(head_dim: int, max_seq_len: int, theta: float) -> None:
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be even and >= 2 (channels rotate in pairs), got {head_dim}")
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}")
    if not theta > 0:
        raise ValueError(f"theta must be > 0, got {theta}")


def precompute_rope(
    head_dim: int,
    max_seq_len: int,
    theta: float = 10000.0,
    scaling: str | None = None,
    factor: float = 1.0,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for the rotate-half form, each (max_seq_len, head_dim) float32."""
    _validate(head_dim, max_seq_len, theta)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if not factor >= 1.0:
        raise ValueError(f"factor must be >= 1 (it stretches the context), got {factor}")
    if scaling == "ntk":
        theta = theta * factor ** (head_dim / (head_dim - 2))
    inv_freq = _inv_freq(head_dim, theta, device)  # (D/2,)
    pos = torch.arange(max_seq_len, device=device, dtype=torch.float32)  # (T,)
    if scaling == "linear":
        pos = pos / factor  # squeeze the new positions into the trained range
    angles = torch.outer(pos, inv_freq)  # (T, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, D): channel i and i + D/2 share an angle
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (..., D): [x1, x2] -> [-x2, x1], the 90° turn of every pair (i, i + D/2)."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., D/2) each
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate q or k: x (B, H, T, D), cos/sin (T, D) -> (B, H, T, D), in x's dtype."""
    if cos.shape != (x.shape[-2], x.shape[-1]) or sin.shape != cos.shape:
        raise ValueError(f"cos/sin must be (T, D) = {tuple(x.shape[-2:])}, "
                         f"got {tuple(cos.shape)} and {tuple(sin.shape)}")
    x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 rotations drift: rotate in >= fp32
    out = x32 * cos + rotate_half(x32) * sin  # (B, H, T, D), cos/sin broadcast over B and H
    return out.to(x.dtype)


# ----------------------------------------------------------------------------- complex form


def precompute_freqs_cis(head_dim: int, max_seq_len: int, theta: float = 10000.0,
                         device=None) -> torch.Tensor:
    """e^{i m θ_j} for every position m and pair j: complex64 (max_seq_len, head_dim/2)."""
    _validate(head_dim, max_seq_len, theta)
    pos = torch.arange(max_seq_len, device=device, dtype=torch.float32)  # (T,)
    angles = torch.outer(pos, _inv_freq(head_dim, theta, device))  # (T, D/2)
    return torch.polar(torch.ones_like(angles), angles)  # (T, D/2) complex


def apply_rope_complex(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (2j, 2j+1) as complex numbers: x (B, H, T, D) -> (B, H, T, D)."""
    T, D = x.shape[-2:]
    if freqs_cis.shape != (T, D // 2):
        raise ValueError(f"freqs_cis must be (T, D/2) = {(T, D // 2)}, got {tuple(freqs_cis.shape)}")
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], D // 2, 2))  # (B, H, T, D/2) complex
    out = torch.view_as_real(xc * freqs_cis).flatten(-2)  # (B, H, T, D)
    return out.to(x.dtype)


def interleaved_to_half_permutation(head_dim: int) -> torch.Tensor:
    """Row order that turns one head's interleaved-pair q/k rows into rotate-half rows: (D,) long.

    Pair j is rows (2j, 2j+1) in the complex form and rows (j, j + D/2) in the rotate-half
    form, so the new row order is [0, 2, 4, ..., D-2, 1, 3, ..., D-1]. Apply it per head:
    `W.view(n_head, D, d_model)[:, perm].reshape(n_head * D, d_model)`.
    """
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be even and >= 2, got {head_dim}")
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))
