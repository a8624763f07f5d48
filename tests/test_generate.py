"""Tests for minilib.generate: greedy = argmax, cache = no cache, filtering, stopping."""

import pytest
import torch

from minilib.generate import generate, logits_to_probs, sample
from minilib.model import MiniLLM, ModelConfig

TINY = ModelConfig(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)


def model(seed=0):
    torch.manual_seed(seed)
    return MiniLLM(TINY).eval()


def test_greedy_equals_argmax_of_full_forward():
    """Each greedy token is the argmax of a full (no-cache) forward over the sequence so far."""
    m, prompt = model(), [1, 5, 9]
    out = generate(m, prompt, 12, temperature=0)
    seq = list(prompt)
    for tok in out:
        with torch.no_grad():
            logits, _ = m(torch.tensor([seq]))
        assert tok == int(logits[0, -1].argmax())
        seq.append(tok)
    assert len(out) == 12


def test_cache_and_no_cache_generate_the_same_tokens():
    """KV-cache decoding gives the same tokens as recomputing the full forward (greedy and sampled)."""
    m = model(1)
    assert generate(m, [3, 4], 15, temperature=0, use_cache=True) == \
        generate(m, [3, 4], 15, temperature=0, use_cache=False)
    a = generate(m, [3, 4], 15, temperature=1.0, top_k=20,
                 generator=torch.Generator().manual_seed(0), use_cache=True)
    b = generate(m, [3, 4], 15, temperature=1.0, top_k=20,
                 generator=torch.Generator().manual_seed(0), use_cache=False)
    assert a == b


def test_temperature_zero_is_one_hot_and_rows_sum_to_one():
    """temperature 0 is a one-hot on the argmax; any setting gives a distribution."""
    logits = torch.randn(3, 50)
    p0 = logits_to_probs(logits, 0.0)
    assert torch.equal(p0.argmax(-1), logits.argmax(-1)) and torch.equal(p0.sum(-1), torch.ones(3))
    for kw in ({}, {"temperature": 0.5}, {"top_k": 5}, {"top_p": 0.9}, {"top_k": 10, "top_p": 0.5}):
        assert torch.allclose(logits_to_probs(logits, **kw).sum(-1), torch.ones(3), atol=1e-6)


def test_top_k_keeps_exactly_the_k_largest():
    """top-k leaves k non-zero probabilities, on the k largest logits, in the same ratios."""
    logits = torch.randn(2, 40)
    p = logits_to_probs(logits, top_k=7)
    assert ((p > 0).sum(-1) == 7).all()
    top = logits.topk(7, -1).indices
    assert torch.equal(p.gather(-1, top) > 0, torch.ones(2, 7, dtype=torch.bool))
    full = logits.softmax(-1).gather(-1, top)
    assert torch.allclose(p.gather(-1, top), full / full.sum(-1, keepdim=True), atol=1e-6)


def test_top_p_keeps_the_smallest_nucleus():
    """top-p keeps the fewest most-likely tokens whose mass reaches p, and always the top one."""
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert (logits_to_probs(logits, top_p=0.5) > 0).tolist() == [[True, False, False, False]]
    assert (logits_to_probs(logits, top_p=0.7) > 0).tolist() == [[True, True, False, False]]
    assert (logits_to_probs(logits, top_p=0.81) > 0).tolist() == [[True, True, True, False]]
    assert (logits_to_probs(logits, top_p=0.01) > 0).sum() == 1
    kept = logits_to_probs(logits, top_p=0.7)
    assert torch.allclose(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)


def test_sample_follows_the_distribution():
    """sample draws tokens with the given probabilities (10k draws, within 2%)."""
    probs = torch.tensor([[0.2, 0.0, 0.8]]).expand(10000, 3)
    draws = sample(probs, torch.Generator().manual_seed(0)).flatten()
    assert (draws != 1).all()
    assert abs((draws == 2).float().mean().item() - 0.8) < 0.02


def test_stops_after_a_stop_token_which_is_included():
    """Generation ends right after emitting a stop id, and returns it as the last token."""
    m = model(2)
    free = generate(m, [1, 2], 10, temperature=0)
    stop = free[3]
    out = generate(m, [1, 2], 10, temperature=0, stop_ids=(stop,))
    assert out == free[: free.index(stop) + 1]


def test_context_limit():
    """A prompt longer than max_seq_len is a ValueError; generation stops at the context end."""
    m = model()
    with pytest.raises(ValueError, match="max_seq_len 32"):
        generate(m, list(range(33)), 5)
    out = generate(m, list(range(30)), 50, temperature=0)
    assert len(out) == 2
    assert generate(m, list(range(30)), 2, temperature=0, use_cache=False) == out


def test_bad_sampling_settings_raise():
    """Negative temperature, top_k < 1 and top_p outside (0, 1] are ValueErrors naming the setting."""
    logits = torch.randn(1, 8)
    with pytest.raises(ValueError, match="temperature"):
        logits_to_probs(logits, -1.0)
    with pytest.raises(ValueError, match="top_k"):
        logits_to_probs(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        logits_to_probs(logits, top_p=1.5)


def test_generate_text_and_chat_return_text_without_stop_tokens():
    """generate_text/chat return decoded strings that never contain the stop tokens."""
    from minilib.data import world_stories
    from minilib.generate import chat, generate_text
    from minilib.tokenizer import train_tokenizer

    tok = train_tokenizer(world_stories("train", n=100), vocab_size=300)
    torch.manual_seed(0)
    m = MiniLLM(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layer=1, n_head=4,
                            n_kv_head=2, max_seq_len=64)).eval()
    text = generate_text(m, tok, "Once upon a time", max_new_tokens=10, temperature=0)
    assert isinstance(text, str) and "<|eos|>" not in text
    new = generate(m, tok.encode("Once upon a time", add_bos=True), 10, temperature=0,
                   stop_ids=(tok.eos_id,))
    assert text == tok.decode([i for i in new if i != tok.eos_id])
    reply = chat(m, tok, [{"role": "user", "content": "Hi"}], max_new_tokens=5)
    assert isinstance(reply, str) and "<|end|>" not in reply
