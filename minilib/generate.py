"""Sampling from a MiniLLM: temperature, top-k, top-p, stop tokens, with or without the KV cache.

One small function per step, after gpt-fast's `generate.py`:
`logits_to_probs` -> `sample` -> `prefill` (the prompt in one forward) -> `decode_one_token`
(one new token against the cache) -> `generate` (the loop).

- Temperature scales the logits: p_i ∝ exp(z_i / τ). τ → 0 is greedy (argmax), τ = 1 is the
  model's distribution, τ > 1 flattens it.
- Top-k (Fan et al. 2018, arXiv:1805.04833) keeps the k most likely tokens.
- Top-p / nucleus sampling (Holtzman et al. 2020, arXiv:1904.09751) keeps the smallest set of
  most likely tokens whose probability adds up to at least p.
Both renormalise what they keep. Top-k is applied before top-p (as in `transformers`).

Shapes: B batch (1 in `generate`), T positions, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def logits_to_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None) -> torch.Tensor:
    """Next-token distribution from logits: (..., V) -> (..., V), rows sum to 1.

    temperature 0 gives a one-hot on the argmax (greedy decoding).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]          # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
        cum = sorted_logits.softmax(-1).cumsum(-1)                          # (..., V)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)                  # back to vocab order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.softmax(-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row: (B, V) -> (B, 1)."""
    return torch.multinomial(probs, 1, generator=generator)


def prefill(model, ids: torch.Tensor, cache=None) -> torch.Tensor:
    """Run the whole prompt (B, T) once (filling `cache` if given); logits of its last position (B, V)."""
    logits, _ = model(ids, cache=cache)  # (B, T, V)
    return logits[:, -1]


def decode_one_token(model, token: torch.Tensor, cache) -> torch.Tensor:
    """One new token (B, 1) against the cache; its next-token logits (B, V)."""
    logits, _ = model(token, cache=cache)  # (B, 1, V)
    return logits[:, -1]


@torch.no_grad()
def generate(model, ids: Sequence[int] | torch.Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             stop_ids: Sequence[int] = (), use_cache: bool = True,
             generator: torch.Generator | None = None) -> list[int]:
    """Continue the prompt `ids` (list or (1, T)); returns the new tokens only.

    Stops after `max_new_tokens`, after emitting a token in `stop_ids` (which is included), or
    when the context reaches the model's max_seq_len. Greedy when temperature is 0.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device)
    if ids.dim() == 1:
        ids = ids[None]                                                   # (1, T)
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"ids must be a list of ints or a (1, T) tensor, got shape {tuple(ids.shape)}")
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token (e.g. the bos id)")
    max_len = model.cfg.max_seq_len
    if ids.shape[1] > max_len:
        raise ValueError(f"prompt of {ids.shape[1]} tokens is longer than the model's "
                         f"max_seq_len {max_len}")
    stop = set(int(s) for s in stop_ids)
    was_training = model.training
    model.eval()
    budget = min(max_new_tokens, max_len - ids.shape[1])  # positions left in the context
    out: list[int] = []
    cache = model.new_cache(1, device=device) if use_cache else None
    logits = prefill(model, ids, cache)                                   # (1, V)
    seq = ids
    for i in range(budget):
        probs = logits_to_probs(logits, temperature, top_k, top_p)        # (1, V)
        nxt = probs.argmax(-1, keepdim=True) if temperature == 0 else sample(probs, generator)
        out.append(int(nxt))
        if out[-1] in stop or i == budget - 1:
            break
        if use_cache:
            logits = decode_one_token(model, nxt, cache)                  # (1, V)
        else:
            seq = torch.cat([seq, nxt], dim=1)                            # (1, T+1)
            logits = prefill(model, seq)
    model.train(was_training)
    return out


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 200,
                  temperature: float = 0.8, top_k: int | None = 50, top_p: float | None = None,
                  stop_ids: Sequence[int] | None = None, generator=None) -> str:
    """Continue a text prompt (encoded after a bos token); returns the new text only.

    Stops at the end-of-story token (eos) by default; stop tokens are not part of the text.
    """
    stop = (tokenizer.eos_id,) if stop_ids is None else tuple(stop_ids)
    ids = tokenizer.encode(prompt, add_bos=True)
    new = generate(model, ids, max_new_tokens, temperature, top_k, top_p, stop_ids=stop,
                   generator=generator)
    if new and new[-1] in stop:
        new = new[:-1]
    return tokenizer.decode(new)


def chat(model, tokenizer, messages: list[dict], max_new_tokens: int = 200,
         temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
         generator=None) -> str:
    """The assistant's reply to `messages` (chat template + generation prompt), up to end-of-turn."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    if isinstance(ids, str):
        ids = tokenizer.encode(ids)
    stop = (tokenizer.eot_id, tokenizer.eos_id)
    new = generate(model, ids, max_new_tokens, temperature, top_k, top_p, stop_ids=stop,
                   generator=generator)
    if new and new[-1] in stop:
        new = new[:-1]
    return tokenizer.decode(new).strip()
