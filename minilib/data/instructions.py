"""Instruction data: short conversations with one exact answer, and the checker that grades them.

Every example is a problem generator's output written as a chat (system, user, assistant), in
the spirit of FLAN/T0-style templated instruction sets (Wei et al., 2021, arXiv:2109.01652),
except that every answer is short and exact so that a tiny model's progress is measurable:

    story_qa    "Story: ... Question: What color is Mia's kite?"        → "red"
    arithmetic  "What is 7 + 5?"                                      → "12"
    counting    "Leo has 9 shells. He gives 4 to Ava. How many ..."  → "5"
    rewrite     "Write this in capital letters: the red kite"         → "THE RED KITE"
    compare     "Which number is bigger: 7 or 12?"                    → "12"
    spelling    'How many letters are in the word "apple"?'           → "5"

Each problem also has a difficulty (1: one step on small numbers, 3: several steps) that the
verifiable tasks of `tasks.py` reuse. A problem's split is decided by a canonical key (the
numbers of an arithmetic problem, the story of a story question), not by its wording, so a test
question is never a train question in other words.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from .stories import make_story
from .world import CHARACTERS, COLORS, ITEMS, THINGS, check_n, check_split, make_rng, take_split

SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
INSTRUCTION_SIZES = {"train": 20000, "validation": 500, "test": 500}
KINDS = ("story_qa", "arithmetic", "counting", "rewrite", "compare", "spelling")
# Answers whose letter case is part of the task (everything else is compared case-insensitively).
CASE_SENSITIVE_KINDS = {"rewrite"}

# (singular subject, plural subject, verb with -s, base verb) for the plural rewrite.
_PLURALS = [
    ("The cat", "The cats", "sleeps", "sleep"), ("The dog", "The dogs", "runs", "run"),
    ("The fox", "The foxes", "jumps", "jump"), ("The bird", "The birds", "sings", "sing"),
    ("The duck", "The ducks", "swims", "swim"), ("The ball", "The balls", "rolls", "roll"),
    ("The kite", "The kites", "flies", "fly"), ("The boat", "The boats", "floats", "float"),
    ("The bell", "The bells", "rings", "ring"), ("The child", "The children", "laughs", "laugh"),
    ("The mouse", "The mice", "hides", "hide"), ("The frog", "The frogs", "hops", "hop"),
    ("The bus", "The buses", "stops", "stop"), ("The baby", "The babies", "cries", "cry"),
    ("The box", "The boxes", "falls", "fall"), ("The leaf", "The leaves", "drops", "drop"),
]
_SPELL_WORDS = sorted({t for t in THINGS} | {s for s, _ in ITEMS} | set(COLORS))


def _person(rng: random.Random):
    return rng.choice(CHARACTERS)


# ----------------------------------------------------------------------------- problem makers
# Each returns (key, user_text, answer, kind, difficulty).


def make_arithmetic(rng: random.Random, difficulty: int):
    if difficulty == 1:
        a, b, op = rng.randint(0, 9), rng.randint(0, 9), "+"
        expr, ans = f"{a} + {b}", a + b
    elif difficulty == 2:
        op = rng.choice("+-*")
        if op == "*":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            expr, ans = f"{a} * {b}", a * b
        else:
            a, b = rng.randint(10, 99), rng.randint(1, 99)
            if op == "-" and b > a:
                a, b = b, a
            expr, ans = f"{a} {op} {b}", a + b if op == "+" else a - b
    else:
        a, b, c = rng.randint(2, 20), rng.randint(2, 9), rng.randint(1, 20)
        form = rng.randrange(3)
        if form == 0:
            c = min(c, a + b)  # keep answers non-negative
            expr, ans = f"{a} + {b} - {c}", a + b - c
        elif form == 1:
            m = rng.randint(2, 9)
            expr, ans = f"{b} * {m} + {a}", b * m + a
        else:
            expr, ans = f"({a} + {b}) * 2", (a + b) * 2
    t = rng.randrange(4)
    words = expr.replace("*", "times").replace("+", "plus").replace("-", "minus")
    user = (f"What is {expr}?", f"Compute {expr}.", f"What is {words}?",
            f"Calculate: {expr}")[t]
    return f"arith:{expr}", user, str(ans), "arithmetic", difficulty


def make_counting(rng: random.Random, difficulty: int):
    name, _, subj, _, _ = _person(rng)
    friend = rng.choice([c for c in CHARACTERS if c[0] != name])[0]
    item = rng.choice(ITEMS)
    if difficulty == 1:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        user = (f"{name} has {a} {item[1] if a != 1 else item[0]}. {subj.capitalize()} gets {b} "
                f"more. How many {item[1]} does {name} have now?")
        key, ans = f"count:more:{a},{b}", a + b
    elif difficulty == 2:
        a = rng.randint(3, 20)
        b = rng.randint(1, a - 1)
        user = (f"{name} has {a} {item[1]}. {subj.capitalize()} gives {b} to {friend}. "
                f"How many {item[1]} does {name} have left?")
        key, ans = f"count:give:{a},{b}", a - b
    else:
        a, b = rng.randint(2, 12), rng.randint(1, 9)
        c = rng.randint(1, a + b - 1)
        user = (f"{name} has {a} {item[1]}. {subj.capitalize()} finds {b} more and then gives "
                f"{c} to {friend}. How many {item[1]} does {name} have now?")
        key, ans = f"count:more-give:{a},{b},{c}", a + b - c
    return key, user, str(ans), "counting", difficulty


# Story facts by difficulty: 1 stated once, 2 named by an event, 3 a count changed by events.
_FACT_DIFFICULTY = {1: ("color", "place", "who", "stated"), 2: ("what", "feeling", "event"),
                    3: ("count",)}


def make_story_qa(rng: random.Random, difficulty: int | None = None):
    story, facts = make_story(rng, short=True)
    if difficulty is None:
        q, ans, fk = rng.choice(facts)
    else:
        # 1: a fact stated once; 2: a fact named after an event; 3: a count after events
        want = _FACT_DIFFICULTY[difficulty]
        pool = [f for f in facts if f[2] in want] or facts
        q, ans, fk = rng.choice(pool)
    d = difficulty or next(k for k, kinds in _FACT_DIFFICULTY.items() if fk in kinds)
    return story, f"Story: {story}\nQuestion: {q}", ans, "story_qa", d


def make_rewrite(rng: random.Random, difficulty: int):
    t = rng.randrange(2)
    if difficulty == 1:
        words = f"the {rng.choice(COLORS)} {rng.choice(THINGS)}"
        user, ans = f"Write this in capital letters: {words}", words.upper()
    elif difficulty == 3:
        nums = rng.sample(range(1, 30), rng.randint(3, 5))
        user = f"Sort these numbers from smallest to largest: {' '.join(map(str, nums))}"
        ans = " ".join(map(str, sorted(nums)))
    elif t == 0:
        s, p, vs, vb = rng.choice(_PLURALS)
        user, ans = f"Make this sentence plural: {s} {vs}.", f"{p} {vb}."
    else:
        words = rng.sample(COLORS, 3)
        user = f"Reverse the order of these words: {' '.join(words)}"
        ans = " ".join(reversed(words))
    return f"rewrite:{user}", user, ans, "rewrite", difficulty


def make_compare(rng: random.Random, difficulty: int = 1):
    a, b = rng.sample(range(1, 100), 2)
    big = rng.random() < 0.5
    user = f"Which number is {'bigger' if big else 'smaller'}: {a} or {b}?"
    return f"compare:{big}:{a},{b}", user, str(max(a, b) if big else min(a, b)), "compare", 1


def make_spelling(rng: random.Random, difficulty: int = 1):
    w = rng.choice(_SPELL_WORDS)
    return f"spell:{w}", f'How many letters are in the word "{w}"?', str(len(w)), "spelling", 1


MAKERS = {"story_qa": make_story_qa, "arithmetic": make_arithmetic, "counting": make_counting,
          "rewrite": make_rewrite, "compare": make_compare, "spelling": make_spelling}
# How often each kind appears in the instruction mix (story questions dominate: they teach
# the model to read its context, the skill every later chapter relies on).
MIX = [("story_qa", 40), ("arithmetic", 20), ("counting", 20), ("rewrite", 10),
       ("compare", 5), ("spelling", 5)]
_MIX_KINDS = [k for k, _ in MIX]
_MIX_WEIGHTS = [w for _, w in MIX]


def make_problem(rng: random.Random):
    kind = rng.choices(_MIX_KINDS, _MIX_WEIGHTS)[0]
    return MAKERS[kind](rng, None if kind == "story_qa" else rng.randint(1, 3))


def chat(user: str, answer: str | None = None) -> list[dict]:
    """The messages of one exchange: system prompt, user turn, and the answer if given."""
    msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


@lru_cache(maxsize=16)
def _instructions(split: str, n: int, seed: int) -> tuple:
    rng = make_rng("instructions", seed)
    return tuple(take_split(make_problem, lambda p: p[0], split, n, rng))


def world_instructions(split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
    """`n` conversations {"messages", "answer", "kind"}; the last message is the reference."""
    check_split(split)
    check_n(n)
    probs = _instructions(split, INSTRUCTION_SIZES[split] if n is None else n, seed)
    return [{"messages": chat(user, ans), "answer": ans, "kind": kind}
            for _key, user, ans, kind, _d in probs]


# ----------------------------------------------------------------------------- checking

_SPACE = re.compile(r"\s+")


def normalize_answer(text: str, case_sensitive: bool = False) -> str:
    """Strip surrounding whitespace and one final period, collapse inner whitespace runs."""
    text = _SPACE.sub(" ", str(text).strip())
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text if case_sensitive else text.lower()


def check_answer(example: dict, response: str) -> bool:
    """True when `response` is the example's answer (tolerates whitespace and a final period)."""
    if "answer" not in example:
        raise ValueError(f"example has no 'answer' field; keys are {sorted(example)}")
    cs = example.get("kind") in CASE_SENSITIVE_KINDS
    return normalize_answer(response, cs) == normalize_answer(example["answer"], cs)
