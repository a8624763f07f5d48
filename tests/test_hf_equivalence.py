"""minilib.hf_mapping: MiniLLM weights copied into transformers' Llama / Mixtral give the same logits."""

import pytest
import torch

from minilib.hf_mapping import (
    config_from_hf,
    from_hf_model,
    from_hf_state_dict,
    hf_config,
    to_hf_model,
    to_hf_state_dict,
)
from minilib.model import MiniLLM, ModelConfig

BASE = dict(vocab_size=101, d_model=64, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=48)


def _random_model(**kw):
    """A MiniLLM whose every weight (norms included) is perturbed away from its init."""
    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(**{**BASE, **kw})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


CASES = {
    "llama-gqa-tied": dict(),
    "llama-gqa-untied": dict(tie_embeddings=False),
    "llama-mqa-linear-rope": dict(n_kv_head=1, rope_scaling="linear", rope_factor=2.0),
    "llama-ntk-rope": dict(rope_scaling="ntk", rope_factor=4.0, rope_theta=500.0),
    "mixtral-gqa-tied": dict(n_experts=4, top_k=2, expert_hidden=48),
    "mixtral-gqa-untied-top1": dict(n_experts=4, top_k=1, tie_embeddings=False),
}


@pytest.mark.parametrize("kw", CASES.values(), ids=CASES.keys())
def test_same_logits_as_transformers(kw):
    """MiniLLM -> Llama/MixtralForCausalLM via hf_mapping: same logits (fp32, atol 1e-4)."""
    model = _random_model(**kw)
    hf = to_hf_model(model)
    assert type(hf).__name__ == ("MixtralForCausalLM" if model.cfg.is_moe else "LlamaForCausalLM")
    idx = torch.randint(0, 101, (2, 40))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kw", [CASES["llama-gqa-untied"], CASES["mixtral-gqa-tied"]],
                         ids=["llama", "mixtral"])
def test_roundtrip_through_hf_is_exact(kw):
    """to_hf_state_dict then from_hf_state_dict returns every tensor unchanged; a MiniLLM built
    from the HF model has the same sizes and logits."""
    model = _random_model(**kw)
    back = from_hf_state_dict(to_hf_state_dict(model), model.cfg)
    ours = model.state_dict()
    assert set(back) == set(ours)
    for name, t in ours.items():
        assert torch.equal(back[name], t), name
    again = from_hf_model(to_hf_model(model))
    assert again.cfg.hidden_dim == model.cfg.hidden_dim  # ffn_hidden=None comes back explicit
    idx = torch.randint(0, 101, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(again(idx)[0], model(idx)[0])


def test_config_roundtrip():
    """config_from_hf(hf_config(cfg)) == cfg for dense and MoE configs with explicit sizes."""
    for cfg in (ModelConfig(**BASE, ffn_hidden=96),
                ModelConfig(**BASE, n_experts=4, top_k=2, expert_hidden=32)):
        assert config_from_hf(hf_config(cfg)) == cfg


def test_unrepresentable_configs_raise():
    """Shared experts, un-normalised top-k and residual dropout have no Mixtral/Llama twin."""
    for kw, word in ((dict(n_experts=4, n_shared_experts=1), "shared"),
                     (dict(n_experts=4, norm_topk_prob=False), "norm_topk_prob"),
                     (dict(dropout=0.1), "dropout")):
        with pytest.raises(ValueError, match=word):
            hf_config(ModelConfig(**BASE, **kw))
