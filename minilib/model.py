"""MiniLLM: a Llama-style decoder-only language model, dense or Mixture-of-Experts.

    idx -> tok_emb -> n_layer × Block -> RMSNorm -> lm_head -> logits
    Block: x + attn(attn_norm(x)), then x + ffn(ffn_norm(x))          (pre-norm residuals)

Design choices (each the Llama / Mixtral one, so `hf_mapping.py` can copy the weights into
`transformers`' LlamaForCausalLM / MixtralForCausalLM and get the same logits):
- pre-norm RMSNorm (Xiong et al. 2020, arXiv:2002.04745: pre-norm trains without warm-up
  tricks); a final RMSNorm before the head;
- RoPE on q and k (rotate-half layout), no learned position embeddings; the cos/sin tables are
  non-persistent buffers (derived from the config, so not stored in checkpoints);
- grouped-query attention (`n_kv_head` ≤ `n_head`), no biases anywhere;
- SwiGLU FFN (Shazeer 2020) with hidden size ≈ 8/3 · d_model (keeps the parameter count of a
  4·d_model GELU FFN), rounded up to a multiple of 32; or a sparse MoE layer (`moe.py`);
- optionally tied input/output embeddings (Press & Wolf 2017, arXiv:1608.05859), on by
  default because at this size the embedding table is a large share of the parameters.

`forward` returns (logits, aux_loss): aux_loss = Σ over MoE layers of
aux_loss_coef · load-balancing + z_loss_coef · z-loss (0 for a dense model); the training
loop adds it to the cross-entropy. Differences from Mixtral: its loss sums the balance
statistics over all layers before multiplying (one E·Σ f·P over the concatenated layers); we
add one loss per layer, which is what each layer's router controls.

Shapes: B batch, T positions, C d_model, V vocab_size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from .attention import Attention, KVCache
from .moe import MoE, SwiGLU
from .norm import RMSNorm
from .rope import SCALINGS, precompute_rope


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Every size of a MiniLLM. Defaults: a ~1M-parameter model that trains on a laptop CPU."""

    vocab_size: int = 4096  # tokenizer vocabulary (chapter 01 trains a 4k byte-level BPE)
    d_model: int = 128  # residual stream width C
    n_layer: int = 4
    n_head: int = 4  # query heads; head_dim = d_model / n_head
    n_kv_head: int = 2  # key/value heads (GQA): halves the KV cache here
    max_seq_len: int = 256  # longest context; sizes the RoPE tables and the KV cache
    ffn_hidden: int | None = None  # dense SwiGLU width; None -> 8/3·d_model rounded up to 32
    rope_theta: float = 10000.0  # RoPE base: larger = slower-turning low frequencies
    rope_scaling: str | None = None  # None, "linear" (position interpolation) or "ntk"
    rope_factor: float = 1.0  # context-extension factor for rope_scaling
    norm_eps: float = 1e-6
    tie_embeddings: bool = True  # lm_head shares tok_emb's weight
    dropout: float = 0.0  # on attention probs and residual branches; 0 for tiny-data runs
    n_experts: int = 0  # 0 = dense FFN; >0 = MoE with this many routed experts
    top_k: int = 2  # experts per token (MoE only)
    n_shared_experts: int = 0  # always-on experts (DeepSeekMoE), MoE only
    expert_hidden: int | None = None  # one expert's SwiGLU width; None -> same as hidden_dim
    norm_topk_prob: bool = True  # renormalise the k chosen router weights (Mixtral)
    aux_loss_coef: float = 0.01  # weight of the load-balancing loss (Switch uses 0.01)
    z_loss_coef: float = 0.001  # weight of the router z-loss (ST-MoE uses 0.001)

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layer", "n_head", "n_kv_head", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head={self.n_head} must be divisible by n_kv_head={self.n_kv_head}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim = d_model/n_head = {self.head_dim} must be even (RoPE "
                             "rotates channel pairs)")
        for name in ("ffn_hidden", "expert_hidden"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or a positive int, got {value!r}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")
        if self.rope_scaling not in SCALINGS:
            raise ValueError(f"rope_scaling must be one of {SCALINGS}, got {self.rope_scaling!r}")
        if not self.rope_factor >= 1.0:
            raise ValueError(f"rope_factor must be >= 1, got {self.rope_factor}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.n_experts, int) or self.n_experts < 0:
            raise ValueError(f"n_experts must be an int >= 0 (0 = dense), got {self.n_experts!r}")
        if self.is_moe and not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, n_experts={self.n_experts}]")
        if self.n_shared_experts < 0:
            raise ValueError(f"n_shared_experts must be >= 0, got {self.n_shared_experts}")
        for name in ("aux_loss_coef", "z_loss_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def hidden_dim(self) -> int:
        """Dense SwiGLU width: ffn_hidden, or 8/3·d_model rounded up to a multiple of 32."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        return 32 * math.ceil(8 * self.d_model / 3 / 32)

    @property
    def expert_hidden_dim(self) -> int:
        """One expert's SwiGLU width: expert_hidden, or the dense width."""
        return self.expert_hidden if self.expert_hidden is not None else self.hidden_dim

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error (a typo must not silently default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {unknown}")
        return cls(**d)


class Block(nn.Module):
    """One pre-norm decoder block: x (B, T, C) -> (x (B, T, C), aux_loss scalar)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg.d_model, cfg.n_head, cfg.n_kv_head, dropout=cfg.dropout)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        if cfg.is_moe:
            self.ffn = MoE(cfg.d_model, cfg.n_experts, cfg.top_k, cfg.expert_hidden_dim,
                           cfg.n_shared_experts, cfg.norm_topk_prob)
        else:
            self.ffn = SwiGLU(cfg.d_model, cfg.hidden_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, layer_idx: int = 0):
        # Residual stream stays un-normalised; each branch reads a normalised copy (pre-norm).
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, cache, layer_idx))  # (B, T, C)
        h = self.ffn_norm(x)  # (B, T, C)
        if self.cfg.is_moe:
            h, lb, z = self.ffn(h)  # (B, T, C), scalar, scalar
            aux = self.cfg.aux_loss_coef * lb + self.cfg.z_loss_coef * z
        else:
            h, aux = self.ffn(h), x.new_zeros((), dtype=torch.float32)  # (B, T, C)
        return x + self.drop(h), aux  # (B, T, C)


class MiniLLM(nn.Module):
    """Decoder LM: idx (B, T) long -> (logits (B, T, V), aux_loss scalar)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # one (V, C) matrix reads and writes tokens
        cos, sin = precompute_rope(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta,
                                   cfg.rope_scaling, cfg.rope_factor)
        self.register_buffer("cos", cos, persistent=False)  # (max_seq_len, D)
        self.register_buffer("sin", sin, persistent=False)  # (max_seq_len, D)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The one initialisation of every parameter (GPT-2 / nanoGPT style):

        - every Linear (q, k, v, FFN in-projections, router, untied lm_head) and the token
          embedding: normal(0, 0.02);
        - the two residual out-projections of each block (attn.wo and every w_down, routed or
          shared): normal(0, 0.02 / sqrt(2·n_layer)), so the residual stream's variance does
          not grow with depth (2·n_layer branches add into it; GPT-2, Radford et al. 2019);
        - RMSNorm weights: ones (each norm starts as a plain normalisation).
        """
        std = 0.02
        resid_std = std / math.sqrt(2 * self.cfg.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_resid = name.endswith("attn.wo") or name.endswith("w_down")
                nn.init.normal_(module.weight, mean=0.0, std=resid_std if is_resid else std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None):
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.cfg.max_seq_len:
            raise ValueError(f"sequence too long: {start} cached + {T} new positions > "
                             f"max_seq_len {self.cfg.max_seq_len}")
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]  # (T, D) each
        x = self.drop(self.tok_emb(idx))  # (B, T, C)
        aux_loss = torch.zeros((), device=idx.device)
        for layer_idx, block in enumerate(self.blocks):
            x, aux = block(x, cos, sin, cache, layer_idx)  # (B, T, C), scalar
            aux_loss = aux_loss + aux
        if cache is not None:
            cache.advance(T)  # once, after every layer wrote its keys/values at start..start+T-1
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        return logits, aux_loss

    def new_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        """An empty KV cache sized for this model (defaults: the parameters' device and dtype)."""
        p = self.tok_emb.weight
        return KVCache(self.cfg.n_layer, batch_size, self.cfg.n_kv_head, self.cfg.max_seq_len,
                       self.cfg.head_dim, device=device or p.device, dtype=dtype or p.dtype)

    # ----------------------------------------------------------------------- accounting

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters, a tied matrix counted once; optionally without the token
        embedding and (untied) output head, the "non-embedding" count of Kaplan et al. 2020."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied weight once
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel()
            if not self.cfg.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    def _inactive_expert_params(self) -> int:
        """Parameters of the routed experts a token does NOT visit, summed over layers."""
        if not self.cfg.is_moe:
            return 0
        per_expert = sum(p.numel() for p in self.blocks[0].ffn.experts[0].parameters())
        return self.cfg.n_layer * (self.cfg.n_experts - self.cfg.top_k) * per_expert

    def active_params_per_token(self) -> int:
        """Parameters one token's forward pass touches: all, minus the n_experts − top_k routed
        experts it skips in every MoE layer (equals num_params() for a dense model)."""
        return self.num_params() - self._inactive_expert_params()

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Forward FLOPs per token (multiply-add = 2 FLOPs), as in Kaplan et al. 2020 / nanoGPT:

            2 · N_matmul  +  4 · n_layer · seq_len · d_model
            weights         attention scores q·kᵀ and probs·v over a seq_len context

        N_matmul = active parameters used in matmuls: no embedding lookup, no norm weights, but
        the output head (even when tied). seq_len defaults to max_seq_len. Training (forward
        + backward) costs about 3× this: the familiar 6·N per token.
        """
        cfg = self.cfg
        seq_len = cfg.max_seq_len if seq_len is None else seq_len
        norms = sum(m.weight.numel() for m in self.modules() if isinstance(m, RMSNorm))
        embeddings = self.num_params() - self.num_params(exclude_embeddings=True)
        n_matmul = self.active_params_per_token() - embeddings - norms
        n_matmul += cfg.vocab_size * cfg.d_model  # the lm_head matmul, tied or not
        return 2 * n_matmul + 4 * cfg.n_layer * seq_len * cfg.d_model
