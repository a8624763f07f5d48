"""The one table between MiniLLM parameter names and `transformers`' Llama / Mixtral names.

A dense MiniLLM is a `LlamaForCausalLM`, an MoE MiniLLM a `MixtralForCausalLM` (same maths,
tests/test_hf_equivalence.py shows the logits agree within 1e-4 in fp32). Only the names and,
for Mixtral's experts, the layout differ:

- Mixtral (transformers ≥ 5) stores the experts of a layer as two 3-D tensors:
  `experts.gate_up_proj` (E, 2F, C) = [w_gate; w_up] of each expert stacked along rows, and
  `experts.down_proj` (E, C, F). MiniLLM keeps a ModuleList of SwiGLU experts.
- RoPE needs no permutation: both use the rotate-half layout. Static NTK scaling is
  expressed as a larger `rope_theta` (that is all it is); linear scaling as rope_type "linear".

Not representable (ValueError from `hf_config`): shared experts and `norm_topk_prob=False`
(Mixtral always renormalises the top-k weights), and dropout > 0 on the residual branches.

`transformers` is imported inside the functions only, so importing minilib stays light.
The export chapter (15) reuses `hf_config` and `to_hf_state_dict` to write HF checkpoints.
"""

from __future__ import annotations

import torch

from .model import MiniLLM, ModelConfig

# minilib name                        transformers name           ({i} = layer index)
NAME_TABLE: list[tuple[str, str]] = [
    ("tok_emb.weight", "model.embed_tokens.weight"),
    ("blocks.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blocks.{i}.attn.wq.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("blocks.{i}.attn.wk.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("blocks.{i}.attn.wv.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("blocks.{i}.attn.wo.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("blocks.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    # dense SwiGLU (Llama)
    ("blocks.{i}.ffn.w_gate.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("blocks.{i}.ffn.w_up.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("blocks.{i}.ffn.w_down.weight", "model.layers.{i}.mlp.down_proj.weight"),
    # MoE (Mixtral): the router; the experts are stacked, see EXPERT_TABLE
    ("blocks.{i}.ffn.router.gate.weight", "model.layers.{i}.mlp.gate.weight"),
    ("norm.weight", "model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
]

# Mixtral tensor <- MiniLLM expert weights ({e} = expert), stacked over e (dim 0).
EXPERT_TABLE: dict[str, tuple[str, ...]] = {
    # (E, 2F, C): rows [0, F) are w_gate, rows [F, 2F) are w_up (Mixtral's .chunk(2) order)
    "model.layers.{i}.mlp.experts.gate_up_proj": ("blocks.{i}.ffn.experts.{e}.w_gate.weight",
                                                  "blocks.{i}.ffn.experts.{e}.w_up.weight"),
    # (E, C, F)
    "model.layers.{i}.mlp.experts.down_proj": ("blocks.{i}.ffn.experts.{e}.w_down.weight",),
}


def hf_config(cfg: ModelConfig):
    """The `transformers` LlamaConfig (dense) or MixtralConfig (MoE) of the same model."""
    if cfg.dropout > 0:
        raise ValueError(f"dropout={cfg.dropout}: Llama/Mixtral have no residual dropout; "
                         "export a model built with dropout=0.0")
    theta, rope = cfg.rope_theta, {"rope_type": "default"}
    if cfg.rope_scaling == "linear":
        rope = {"rope_type": "linear", "factor": float(cfg.rope_factor)}
    elif cfg.rope_scaling == "ntk":  # static NTK-aware scaling == a larger base (rope.py)
        theta = theta * cfg.rope_factor ** (cfg.head_dim / (cfg.head_dim - 2))
    rope["rope_theta"] = float(theta)
    common = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim, hidden_act="silu", max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters=rope, attention_dropout=0.0, initializer_range=0.02,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    if not cfg.is_moe:
        from transformers import LlamaConfig

        return LlamaConfig(intermediate_size=cfg.hidden_dim, attention_bias=False,
                           mlp_bias=False, **common)
    if cfg.n_shared_experts:
        raise ValueError(f"n_shared_experts={cfg.n_shared_experts}: Mixtral has no shared experts")
    if not cfg.norm_topk_prob:
        raise ValueError("norm_topk_prob=False: Mixtral always renormalises the top-k weights")
    from transformers import MixtralConfig

    return MixtralConfig(intermediate_size=cfg.expert_hidden_dim, num_local_experts=cfg.n_experts,
                         num_experts_per_tok=cfg.top_k, router_jitter_noise=0.0,
                         router_aux_loss_coef=cfg.aux_loss_coef, sliding_window=None, **common)


def config_from_hf(hf_cfg) -> ModelConfig:
    """The ModelConfig of a LlamaConfig / MixtralConfig written by `hf_config` (default RoPE)."""
    rope = dict(getattr(hf_cfg, "rope_parameters", None) or {})
    scaling = "linear" if rope.get("rope_type") == "linear" else None
    kw = dict(vocab_size=hf_cfg.vocab_size, d_model=hf_cfg.hidden_size,
              n_layer=hf_cfg.num_hidden_layers, n_head=hf_cfg.num_attention_heads,
              n_kv_head=hf_cfg.num_key_value_heads, max_seq_len=hf_cfg.max_position_embeddings,
              rope_theta=float(rope.get("rope_theta", 10000.0)), rope_scaling=scaling,
              rope_factor=float(rope.get("factor", 1.0)) if scaling else 1.0,
              norm_eps=hf_cfg.rms_norm_eps, tie_embeddings=bool(hf_cfg.tie_word_embeddings))
    if getattr(hf_cfg, "num_local_experts", None):
        kw.update(n_experts=hf_cfg.num_local_experts, top_k=hf_cfg.num_experts_per_tok,
                  expert_hidden=hf_cfg.intermediate_size)
    else:
        kw.update(ffn_hidden=hf_cfg.intermediate_size)
    return ModelConfig(**kw)


def _layer_names(cfg: ModelConfig):
    """(minilib, hf) name pairs of the 1:1 tensors of this config, layers expanded."""
    dense_only, moe_only = ("ffn.w_gate", "ffn.w_up", "ffn.w_down"), ("ffn.router",)
    for ours, theirs in NAME_TABLE:
        skip = moe_only if not cfg.is_moe else dense_only
        if any(f"blocks.{{i}}.{s}" in ours for s in skip):
            continue
        if "{i}" in ours:
            for i in range(cfg.n_layer):
                yield ours.format(i=i), theirs.format(i=i)
        else:
            yield ours, theirs


def to_hf_state_dict(model: MiniLLM) -> dict[str, torch.Tensor]:
    """MiniLLM weights under `transformers` names (tied head: both keys, one tensor)."""
    cfg, ours = model.cfg, model.state_dict()
    out = {theirs: ours[mine].detach() for mine, theirs in _layer_names(cfg)}
    if cfg.is_moe:
        for i in range(cfg.n_layer):
            for theirs, parts in EXPERT_TABLE.items():
                stacked = [torch.cat([ours[p.format(i=i, e=e)] for p in parts], dim=0)  # (rows, cols)
                           for e in range(cfg.n_experts)]
                out[theirs.format(i=i)] = torch.stack(stacked).detach()  # (E, rows, cols)
    return out


def from_hf_state_dict(state_dict: dict[str, torch.Tensor], cfg: ModelConfig
                       ) -> dict[str, torch.Tensor]:
    """The inverse: a `transformers` state dict -> a MiniLLM state dict for `cfg`."""
    out = {mine: state_dict[theirs] for mine, theirs in _layer_names(cfg)
           if theirs in state_dict or mine != "lm_head.weight"}
    if cfg.tie_embeddings:
        out["lm_head.weight"] = out["tok_emb.weight"]  # tied checkpoints may omit the head
    if cfg.is_moe:
        F = cfg.expert_hidden_dim
        for i in range(cfg.n_layer):
            gate_up = state_dict[f"model.layers.{i}.mlp.experts.gate_up_proj"]  # (E, 2F, C)
            down = state_dict[f"model.layers.{i}.mlp.experts.down_proj"]  # (E, C, F)
            for e in range(cfg.n_experts):
                prefix = f"blocks.{i}.ffn.experts.{e}"
                out[f"{prefix}.w_gate.weight"] = gate_up[e, :F]  # (F, C)
                out[f"{prefix}.w_up.weight"] = gate_up[e, F:]  # (F, C)
                out[f"{prefix}.w_down.weight"] = down[e]  # (C, F)
    return out


def to_hf_model(model: MiniLLM):
    """A `transformers` LlamaForCausalLM / MixtralForCausalLM holding a copy of the weights."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_config(hf_config(model.cfg), attn_implementation="eager")
    hf.load_state_dict(to_hf_state_dict(model), strict=True)
    return hf.to(model.tok_emb.weight.dtype).eval()


def from_hf_model(hf_model) -> MiniLLM:
    """A MiniLLM holding a copy of a Llama / Mixtral model's weights."""
    cfg = config_from_hf(hf_model.config)
    model = MiniLLM(cfg)
    model.load_state_dict(from_hf_state_dict(hf_model.state_dict(), cfg), strict=True)
    return model
