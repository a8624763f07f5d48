"""Preference pairs: one prompt, a chosen answer and a rejected one with a recorded flaw.

The chosen answer is always the reference answer itself (correct, concise, polite by having
nothing impolite in it). The rejected one has exactly one flaw, recorded so that a reward model
can be evaluated per kind of mistake (as in the per-category accuracies of RewardBench,
Lambert et al., 2024, arXiv:2403.13787):

    wrong     a plausible answer of the right type that is false ("blue" for "red", 11 for 12)
    rambling  the right answer buried in hedging filler
    rude      the right answer, said rudely
    format    the right answer in a broken format (shouted, repeated, spelled out, tagged)

Pairs in the style of Anthropic HH (Bai et al., 2022, arXiv:2204.05862): the same prompt with a
better and a worse response, the format DPO (Rafailov et al., 2023) and Bradley–Terry reward
models consume.
"""

from __future__ import annotations

import random
from functools import lru_cache

from .instructions import chat, make_problem
from .world import (
    CHARACTERS,
    COLORS,
    FEELINGS,
    GAMES,
    MATERIALS,
    PLACES,
    check_n,
    check_split,
    make_rng,
    take_split,
)

PREFERENCE_SIZES = {"train": 10000, "validation": 500, "test": 500}
FLAWS = ("wrong", "rambling", "rude", "format")
_FLAW_WEIGHTS = (40, 20, 20, 20)

_POOLS = [COLORS, PLACES, FEELINGS, GAMES, [c[0] for c in CHARACTERS],
          sorted({c[1] for c in CHARACTERS}), [m[0] for m in MATERIALS]]
_RAMBLE_OPEN = ["Well, that is a really interesting question, and I have been thinking about it",
                "Hmm, let me think about this for a long time, because there is a lot to say",
                "Okay, so, there are many ways to look at a question like this one",
                "That is a question people could talk about for hours and hours"]
_RAMBLE_CLOSE = ["but I could be wrong, so maybe you should check it yourself",
                 "although, to be honest, it is hard to be completely sure about anything",
                 "and that is more or less what I think, more or less, in the end",
                 "but there are many other things one could also say about it"]
_RUDE = [("Ugh, obviously", ". Why would you even ask that?"),
         ("It is", ", which anyone could see. Stop wasting my time."),
         ("Seriously? It's", ". Try to think for yourself next time."),
         ("Fine, the answer is", ". Now leave me alone.")]


def wrong_answer(rng: random.Random, answer: str) -> str:
    """A false answer of the same type: a nearby number, another colour, place or name."""
    if answer.lstrip("-").isdigit():
        v = int(answer)
        cands = [v + d for d in (-3, -2, -1, 1, 2, 3, 10) if v + d >= 0]
        return str(rng.choice(cands))
    for pool in _POOLS:
        if answer in pool:
            return rng.choice([p for p in pool if p != answer])
    words = answer.split()
    if len(words) >= 2:  # rewrites: same words in a wrong order, or with one missing
        w = words[:]
        while w == words:
            rng.shuffle(w)
        return " ".join(w) if rng.random() < 0.5 else " ".join(words[:-1])
    return answer.lower() if answer != answer.lower() else answer[::-1] + "s"


def flawed_answer(rng: random.Random, answer: str, flaw: str) -> str:
    """The rejected response with this flaw (every flaw but `wrong` keeps the right content)."""
    if flaw == "wrong":
        return wrong_answer(rng, answer)
    if flaw == "rambling":
        return (f"{rng.choice(_RAMBLE_OPEN)}, and after a lot of thought I would say that the "
                f"answer is probably {answer}, {rng.choice(_RAMBLE_CLOSE)}.")
    if flaw == "rude":
        pre, post = rng.choice(_RUDE)
        return f"{pre} {answer}{post}"
    if flaw == "format":
        t = rng.randrange(4)
        if t == 0:
            return f"ANSWER >>> {answer.upper()} <<< !!!"
        if t == 1:
            return " ".join([answer] * rng.randint(3, 5))
        if t == 2:
            return "-".join(answer.upper()) + "!!!"
        return f"<answer>{answer}</answer> ???"
    raise ValueError(f"flaw must be one of {', '.join(FLAWS)}; got {flaw!r}")


def _make_pair(rng: random.Random):
    key, user, ans, _kind, _d = make_problem(rng)
    flaw = rng.choices(FLAWS, _FLAW_WEIGHTS)[0]
    return key, user, ans, flawed_answer(rng, ans, flaw), flaw


@lru_cache(maxsize=16)
def _pairs(split: str, n: int, seed: int) -> tuple:
    rng = make_rng("preferences", seed)
    return tuple(take_split(_make_pair, lambda p: p[0], split, n, rng))


def world_preferences(split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
    """`n` pairs {"prompt": messages, "chosen", "rejected", "flaw"}; chosen is the reference."""
    check_split(split)
    check_n(n)
    pairs = _pairs(split, PREFERENCE_SIZES[split] if n is None else n, seed)
    return [{"prompt": chat(user), "chosen": ans, "rejected": rej, "flaw": flaw}
            for _key, user, ans, rej, flaw in pairs]
