"""minilib.model: config validation, sequence-length errors, KV-cache decoding, accounting, learning."""

import json

import pytest
import torch

from minilib.model import MiniLLM, ModelConfig

TINY = dict(vocab_size=97, d_model=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)


@pytest.mark.parametrize("kwargs, field", [
    (dict(d_model=30, n_head=4), "d_model"),
    (dict(n_head=4, n_kv_head=3), "n_head"),
    (dict(d_model=12, n_head=4, n_kv_head=2), "head_dim"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(n_layer=-1), "n_layer"),
    (dict(max_seq_len=0), "max_seq_len"),
    (dict(ffn_hidden=0), "ffn_hidden"),
    (dict(n_experts=4, top_k=5), "top_k"),
    (dict(n_experts=4, top_k=0), "top_k"),
    (dict(n_experts=-1), "n_experts"),
    (dict(expert_hidden=-3), "expert_hidden"),
    (dict(n_shared_experts=-1), "n_shared_experts"),
    (dict(rope_scaling="yarn"), "rope_scaling"),
    (dict(rope_factor=0.5), "rope_factor"),
    (dict(dropout=1.0), "dropout"),
    (dict(norm_eps=0.0), "norm_eps"),
    (dict(aux_loss_coef=-0.1), "aux_loss_coef"),
])
def test_config_validation_names_field(kwargs, field):
    """Each invalid config is a ValueError whose message names the offending field."""
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


def test_config_is_frozen_keyword_only_and_roundtrips_json():
    """ModelConfig is immutable, keyword-only, and to_dict -> JSON -> from_dict is lossless."""
    cfg = ModelConfig(n_experts=4, top_k=1, rope_scaling="linear", rope_factor=2.0)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(TypeError):
        ModelConfig(4096)  # positional
    with pytest.raises(AttributeError):
        cfg.d_model = 3


def test_from_dict_rejects_unknown_keys():
    """Unknown keys (typos) are a ValueError that lists them."""
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "n_layers": 3})


def test_derived_sizes():
    """hidden_dim = 8/3·d_model rounded up to 32 unless given; experts default to the same."""
    assert ModelConfig(d_model=128).hidden_dim == 352  # 341.3 -> 352
    assert ModelConfig(d_model=96, ffn_hidden=100).hidden_dim == 100
    cfg = ModelConfig(n_experts=4, expert_hidden=64)
    assert cfg.is_moe and cfg.expert_hidden_dim == 64 and cfg.head_dim == 32


@pytest.mark.parametrize("moe", [False, True])
def test_forward_shapes_and_aux(moe):
    """forward returns logits (B, T, V) and a scalar aux loss: 0 for dense, > 0 for MoE."""
    cfg = ModelConfig(**TINY, n_experts=4 if moe else 0)
    logits, aux = MiniLLM(cfg)(torch.randint(0, 97, (3, 10)))
    assert logits.shape == (3, 10, 97) and aux.shape == ()
    assert (aux.item() > 0) == moe


def test_too_long_sequence_raises():
    """T > max_seq_len, or cache.pos + T > max_seq_len, is a ValueError naming both numbers."""
    model = MiniLLM(ModelConfig(**TINY))
    with pytest.raises(ValueError, match="33.*32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    cache = model.new_cache(1)
    model(torch.zeros(1, 30, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="30 cached \\+ 3 new.*32"):
        model(torch.zeros(1, 3, dtype=torch.long), cache)


@pytest.mark.parametrize("moe", [False, True])
def test_cache_decode_equals_full_forward(moe):
    """Prefill + chunk + token-by-token decoding with the KV cache == one full forward (1e-5)."""
    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(**TINY, n_experts=4 if moe else 0)).eval()
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache(2)
        parts = [model(idx[:, :8], cache)[0], model(idx[:, 8:12], cache)[0]]
        parts += [model(idx[:, t:t + 1], cache)[0] for t in range(12, 20)]
    assert cache.pos == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tie", [True, False])
def test_num_params_counts_tied_weights_once(tie):
    """num_params == Σ numel over unique parameters; the tied head is not counted twice."""
    model = MiniLLM(ModelConfig(**TINY, tie_embeddings=tie))
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_params() == sum(unique.values())
    assert (model.lm_head.weight is model.tok_emb.weight) == tie
    emb = 97 * 32 * (1 if tie else 2)
    assert model.num_params(exclude_embeddings=True) == model.num_params() - emb


def test_active_params_below_total_for_moe():
    """MoE: active = total − n_layer·(E − k)·params per expert < total; dense: active == total."""
    cfg = ModelConfig(**TINY, n_experts=8, top_k=2, expert_hidden=16)
    model = MiniLLM(cfg)
    per_expert = 3 * 32 * 16
    assert model.active_params_per_token() == model.num_params() - 2 * 6 * per_expert
    dense = MiniLLM(ModelConfig(**TINY))
    assert dense.active_params_per_token() == dense.num_params()


def test_flops_per_token_formula():
    """flops = 2·(matmul params incl. head) + 4·n_layer·T·C; it grows linearly with T."""
    model = MiniLLM(ModelConfig(**TINY))
    n_matmul = sum(p.numel() for n, p in model.named_parameters()
                   if p.dim() == 2 and n != "tok_emb.weight") + 97 * 32  # head matmul (tied)
    assert model.flops_per_token(16) == 2 * n_matmul + 4 * 2 * 16 * 32
    assert model.flops_per_token(32) - model.flops_per_token(16) == 4 * 2 * 16 * 32


def test_init_weights_is_documented_scheme():
    """Norms start at ones, residual projections at std 0.02/sqrt(2·n_layer), others 0.02."""
    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(vocab_size=512, d_model=128, n_layer=8, n_head=4, n_kv_head=2))
    assert all((b.attn_norm.weight == 1).all() for b in model.blocks)
    assert abs(model.blocks[0].attn.wq.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].attn.wo.weight.std().item() - 0.02 / 4) < 0.0005
    assert abs(model.blocks[0].ffn.w_down.weight.std().item() - 0.02 / 4) < 0.0005


def test_rope_buffers_not_in_state_dict():
    """cos/sin are derived from the config: buffers, but not saved in checkpoints."""
    sd = MiniLLM(ModelConfig(**TINY)).state_dict()
    assert "cos" not in sd and "sin" not in sd


@pytest.mark.parametrize("moe", [False, True])
def test_overfits_one_batch(moe):
    """A tiny model memorises one batch: cross-entropy falls below 0.3 within 60 Adam steps."""
    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(**TINY, n_experts=4 if moe else 0))
    idx = torch.randint(0, 97, (2, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(60):
        logits, aux = model(idx[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 97), idx[:, 1:].reshape(-1))
        opt.zero_grad()
        (loss + aux).backward()
        opt.step()
    assert loss.item() < 0.3, loss.item()


def test_chapter_06_checkers(capsys):
    """The chapter 06 checkers pass correct answers, fail wrong ones, and never raise."""
    from minilib.checks import check_block_forward, check_count_params

    def block_forward(x, attn_norm, attn, ffn_norm, ffn, cos, sin):
        x = x + attn(attn_norm(x), cos, sin)
        return x + ffn(ffn_norm(x))

    def post_norm(x, attn_norm, attn, ffn_norm, ffn, cos, sin):
        x = attn_norm(x + attn(x, cos, sin))
        return ffn_norm(x + ffn(x))

    assert check_block_forward(block_forward)
    assert not check_block_forward(post_norm)
    assert check_count_params(lambda cfg: MiniLLM(cfg).num_params())
    assert not check_count_params(lambda cfg: sum(p.numel() for p in MiniLLM(cfg).state_dict().values()))
    assert "failed" in capsys.readouterr().out
