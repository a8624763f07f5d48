"""LoRA (minilib.lora): identity at init, only adapters train, merge equivalence, bad input."""

import pytest
import torch
from torch import nn

from minilib.lora import LoRALinear, apply_lora, count_trainable, lora_parameters, merge_lora


class Toy(nn.Module):
    """Attention-like names (wq, wk, wv, wo) inside a nested block, plus an untouched head."""

    def __init__(self, d=16, vocab=11):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.block = nn.ModuleDict({n: nn.Linear(d, d, bias=(n == "wo")) for n in ("wq", "wk", "wv", "wo")})
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.emb(idx)
        b = self.block
        x = x + b["wo"](torch.tanh(b["wq"](x)) * b["wk"](x) + b["wv"](x))
        return self.head(x)


def _tiny_llm():
    model_mod = pytest.importorskip("minilib.model")
    cfg = model_mod.ModelConfig(vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, d_model=32,
                                max_seq_len=32)
    return model_mod.MiniLLM(cfg)


def _logits(model, idx):
    out = model(idx)
    return out[0] if isinstance(out, tuple) else out


def test_lora_linear_starts_as_identity_change():
    """B = 0 at init, so a LoRALinear computes exactly its base linear."""
    torch.manual_seed(0)
    base = nn.Linear(8, 5)
    x = torch.randn(3, 4, 8)
    want = base(x)
    lora = LoRALinear(base, rank=4, alpha=8)
    assert torch.equal(lora(x), want)
    assert torch.count_nonzero(lora.lora_B) == 0 and torch.count_nonzero(lora.lora_A) > 0
    assert lora.scaling == 2.0


def test_lora_forward_matches_dense_formula():
    """forward(x) == x (W + alpha/r · B A)^T + b for non-zero adapters."""
    torch.manual_seed(0)
    lora = LoRALinear(nn.Linear(8, 5), rank=2, alpha=3)
    with torch.no_grad():
        lora.lora_B.normal_()
    x = torch.randn(7, 8)
    w = lora.base.weight + 1.5 * lora.lora_B @ lora.lora_A
    torch.testing.assert_close(lora(x), x @ w.T + lora.base.bias, atol=1e-5, rtol=1e-5)


def test_apply_lora_keeps_function_and_freezes_all_but_adapters():
    """After apply_lora the model's output is unchanged and only A, B require grad."""
    torch.manual_seed(0)
    model = Toy()
    idx = torch.randint(0, 11, (2, 6))
    before = model(idx)
    apply_lora(model, targets=("wq", "wv"), rank=4)
    assert isinstance(model.block["wq"], LoRALinear) and isinstance(model.block["wv"], LoRALinear)
    assert isinstance(model.block["wk"], nn.Linear) and not isinstance(model.block["wk"], LoRALinear)
    torch.testing.assert_close(model(idx), before, atol=0, rtol=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"block.wq.lora_A", "block.wq.lora_B", "block.wv.lora_A", "block.wv.lora_B"}
    assert count_trainable(model) == 2 * (4 * 16 + 16 * 4)
    assert {id(p) for p in lora_parameters(model)} == {id(p) for p in model.parameters() if p.requires_grad}


def test_only_adapters_change_when_training():
    """A few optimizer steps move A and B and leave every frozen weight bit-identical."""
    torch.manual_seed(0)
    model = apply_lora(Toy(), targets=("wq", "wv", "wo"), rank=2, dropout=0.1)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    idx = torch.randint(0, 11, (4, 6))
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert torch.count_nonzero(model.block["wq"].lora_B) > 0


def test_merge_gives_same_logits_as_adapters():
    """merge_lora restores plain nn.Linear and the logits agree with base + adapters (atol 1e-5)."""
    torch.manual_seed(0)
    model = apply_lora(Toy(), targets=("wq", "wk", "wv", "wo"), rank=3, alpha=6)
    for p in lora_parameters(model):
        with torch.no_grad():
            p.normal_(std=0.2)
    idx = torch.randint(0, 11, (2, 9))
    with_adapters = model(idx)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(type(model.block[n]) is nn.Linear for n in ("wq", "wk", "wv", "wo"))
    torch.testing.assert_close(model(idx), with_adapters, atol=1e-5, rtol=0)
    assert all(p.requires_grad for p in model.parameters())


def test_merge_equivalence_on_minillm():
    """On the course decoder, LoRA on every attention and FFN linear merges to the same logits."""
    torch.manual_seed(0)
    model = _tiny_llm().eval()
    idx = torch.randint(0, 64, (2, 12))
    before = _logits(model, idx)
    apply_lora(model, targets=("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"), rank=4)
    torch.testing.assert_close(_logits(model, idx), before, atol=1e-6, rtol=0)
    for p in lora_parameters(model):
        with torch.no_grad():
            p.normal_(std=0.1)
    with_adapters = _logits(model, idx)
    assert not torch.allclose(with_adapters, before, atol=1e-3)
    merge_lora(model)
    torch.testing.assert_close(_logits(model, idx), with_adapters, atol=1e-5, rtol=0)


def test_apply_lora_without_match_raises_naming_targets():
    """No linear named like the targets -> ValueError naming the targets and the real names."""
    with pytest.raises(ValueError, match=r"no nn.Linear matches targets \['q_proj'\].*'wq'"):
        apply_lora(Toy(), targets=("q_proj",))
    with pytest.raises(ValueError, match="at least one"):
        apply_lora(Toy(), targets=())


@pytest.mark.parametrize("kwargs, field", [({"rank": 0}, "rank"), ({"alpha": 0}, "alpha"),
                                            ({"dropout": 1.0}, "dropout")])
def test_bad_hyperparameters_raise(kwargs, field):
    """rank < 1, alpha <= 0 or dropout outside [0, 1) -> ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        LoRALinear(nn.Linear(4, 4), **kwargs)
