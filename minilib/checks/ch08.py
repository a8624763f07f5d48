"""Checkers for chapter 08's exercises (see core.py for the verdicts).

- `check_build_loss_mask(fn)`: fn(ids, assistant_id, eot_id) -> list of 0/1, the assistant mask
  (content + closing end-of-turn, not the header's newline) recovered from token ids.
- `check_lora_forward(fn)`: fn(x, weight, bias, A, B, scaling) -> y, the LoRA layer's output.
"""

from __future__ import annotations

import torch

from .core import check_function

__all__ = ["check_build_loss_mask", "check_lora_forward"]

# Token ids of a made-up vocabulary: 1 = <|bos|>, 3 = <|system|>, 4 = <|user|>,
# 5 = <|assistant|>, 6 = <|end|>, 9 = "\n", everything >= 10 a word.
_A, _E = 5, 6
_MASK_CASES = [
    # one exchange: the answer "10 11" and its <|end|> count
    [1, 4, 9, 20, 21, 6, 9, 5, 9, 10, 11, 6, 9],
    # system + two exchanges: both answers count
    [1, 3, 9, 30, 6, 9, 4, 9, 20, 6, 9, 5, 9, 12, 6, 9, 4, 9, 22, 23, 6, 9, 5, 9, 13, 14, 15, 6, 9],
    # an empty answer still teaches the model to stop: only <|end|> counts
    [1, 4, 9, 20, 6, 9, 5, 9, 6, 9],
    # a generation prompt at the end (no answer yet): header and newline never count
    [1, 4, 9, 20, 6, 9, 5, 9],
    # no assistant turn at all
    [1, 4, 9, 20, 21, 22, 6, 9],
]


def check_build_loss_mask(fn) -> bool:
    """fn(ids, assistant_id, eot_id) must equal minilib.sft.build_loss_mask on hand-made chats."""
    from minilib.sft import build_loss_mask

    ref = lambda ids, a, e: build_loss_mask(ids, a, e)
    return check_function("build_loss_mask", fn, ref, [(ids, _A, _E) for ids in _MASK_CASES])


def _lora_reference(x, weight, bias, A, B, scaling):
    frozen = torch.nn.functional.linear(x, weight, bias)  # (..., out)
    return frozen + (x @ A.T) @ B.T * scaling  # (..., in) -> (..., r) -> (..., out)


def check_lora_forward(fn) -> bool:
    """fn(x, weight, bias, A, B, scaling) must equal x W^T + b + scaling · x A^T B^T."""
    g = torch.Generator().manual_seed(8)
    cases = []
    for shape, d_in, d_out, r, has_bias, zero_b in [((2, 5), 8, 6, 2, True, False),
                                                    ((3,), 4, 4, 1, False, False),
                                                    ((2, 3), 8, 6, 4, True, True)]:
        x = torch.randn(*shape, d_in, generator=g)
        w = torch.randn(d_out, d_in, generator=g)
        b = torch.randn(d_out, generator=g) if has_bias else None
        A = torch.randn(r, d_in, generator=g)
        B = torch.zeros(d_out, r) if zero_b else torch.randn(d_out, r, generator=g)
        cases.append((x, w, b, A, B, 16.0 / r))
    return check_function("lora_forward", fn, _lora_reference, cases, atol=1e-4, rtol=1e-5)
